"""Segmentation metrics from one confusion matrix per split, accumulated on the device with bincount.

matrix[i][j] counts the pixels of true class i predicted as class j. Every epoch metric comes from the
matrix of the whole split, never from an average of per-batch scores.

Classes absent from a split's ground truth get an IoU (and accuracy) of None and are left out of the
means: their IoU would be 0 whenever the model predicts them even once and undefined otherwise, so it
says more about the split than about the model. Such false positives are still paid for: they are false
negatives of the pixels' true class, whose IoU drops, and they lower pixel accuracy.
"""

import torch

from evaluation.garment_groups import GarmentGroups
from helpers.batch_augmentation import IGNORE_INDEX
from trainers.distributed import all_reduce_sum


class ConfusionMatrix:
    """Counts (true class, predicted class) pixel pairs; targets outside [0, num_classes) are ignored."""

    def __init__(self, num_classes: int, device: str | torch.device = "cpu"):
        self.num_classes = num_classes
        self.matrix = torch.zeros((num_classes, num_classes), dtype=torch.int64, device=device)

    @torch.no_grad()
    def update(self, predictions: torch.Tensor, targets: torch.Tensor) -> None:
        """Add a batch of predicted class indices and ground-truth class indices (same shape)."""
        if predictions.shape != targets.shape:
            raise ValueError(f"predictions {tuple(predictions.shape)} and targets {tuple(targets.shape)} "
                             "must have the same shape")
        num_classes = self.num_classes
        targets = targets.reshape(-1).long()
        predictions = predictions.reshape(-1).long()
        valid = (targets >= 0) & (targets < num_classes)
        # Ignored pixels go to one extra bin that is dropped, which avoids a data-dependent boolean index.
        pair_indices = torch.where(valid, num_classes * targets + predictions, num_classes * num_classes)
        counts = torch.bincount(pair_indices, minlength=num_classes * num_classes + 1)
        self.matrix += counts[: num_classes * num_classes].reshape(num_classes, num_classes)

    def reset(self) -> None:
        self.matrix.zero_()

    def reduce_across_processes(self) -> None:
        """Sum the matrices of all ranks, so every rank computes metrics over the whole split."""
        all_reduce_sum(self.matrix)

    def compute(self, class_names: list[str] | None = None) -> dict:
        return metrics_from_confusion(self.matrix, class_names)


def metrics_from_confusion(matrix: torch.Tensor | list[list[int]],
                           class_names: list[str] | None = None) -> dict:
    """Pixel accuracy, mean class accuracy, mIoU and frequency-weighted IoU of a confusion matrix.

    The means run over the classes present in the ground truth (non-zero rows). per_class_iou and
    per_class_accuracy hold None for absent classes. With class_names, iou_by_class_name maps each name
    to its IoU (None when absent).
    """
    # Moved to the CPU before the cast: MPS has no float64.
    counts = torch.as_tensor(matrix).cpu().to(torch.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {tuple(counts.shape)}")
    total = counts.sum()
    if total <= 0:
        raise ValueError("confusion matrix is empty: no labelled pixel was evaluated")
    true_positives = counts.diagonal()
    ground_truth_pixels = counts.sum(dim=1)
    predicted_pixels = counts.sum(dim=0)
    present = ground_truth_pixels > 0
    # Denominators are positive for every present class; absent ones are masked out below.
    class_accuracy = true_positives / ground_truth_pixels.clamp(min=1)
    class_iou = true_positives / (ground_truth_pixels + predicted_pixels - true_positives).clamp(min=1)
    metrics = {
        "pixel_accuracy": (true_positives.sum() / total).item(),
        "mean_accuracy": class_accuracy[present].mean().item(),
        "miou": class_iou[present].mean().item(),
        "fw_iou": ((ground_truth_pixels / total) * class_iou)[present].sum().item(),
        "per_class_accuracy": _present_or_none(class_accuracy, present),
        "per_class_iou": _present_or_none(class_iou, present),
        "num_classes_present": int(present.sum().item()),
    }
    if class_names is not None:
        if len(class_names) != counts.shape[0]:
            raise ValueError(f"{len(class_names)} class names for a {counts.shape[0]}-class confusion matrix")
        metrics["iou_by_class_name"] = dict(zip(class_names, metrics["per_class_iou"], strict=True))
    return metrics


def group_metrics(matrix: torch.Tensor | list[list[int]], groups: GarmentGroups) -> dict:
    """Pixel accuracy, mIoU and IoU per garment group, from the class confusion matrix of the same pixels.

    The class matrix's rows and columns are summed by group, so a shirt taken for a blouse counts as right
    (both are tops) and no second pass over the images is needed. Means run over the groups present in
    the ground truth, as for classes.
    """
    counts = torch.as_tensor(matrix).cpu().to(torch.int64)
    if counts.shape[0] != len(groups.class_names):
        raise ValueError(f"{len(groups.class_names)} class names for a {counts.shape[0]}-class confusion matrix")
    group_index = torch.from_numpy(groups.group_index)
    by_true_group = torch.zeros(len(groups.group_names), counts.shape[1], dtype=torch.int64)
    by_true_group.index_add_(0, group_index, counts)
    grouped = torch.zeros(len(groups.group_names), len(groups.group_names), dtype=torch.int64)
    grouped.index_add_(1, group_index, by_true_group)
    metrics = metrics_from_confusion(grouped, groups.group_names)
    return {"mapping": groups.mapping(), "pixel_accuracy": metrics["pixel_accuracy"], "miou": metrics["miou"],
            "per_group_iou": metrics["iou_by_class_name"]}


def _present_or_none(values: torch.Tensor, present: torch.Tensor) -> list[float | None]:
    return [value if is_present else None
            for value, is_present in zip(values.tolist(), present.tolist(), strict=True)]


def correct_pixels(logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Valid pixels whose true class is the predicted one: of tied best scores, the lowest class index wins,
    as in argmax and so in every prediction and confusion matrix.

    max over the classes returns argmax's indices (the first maximum) in about the time of amax, while on a
    CPU argmax over the channel dimension of an N×C×H×W tensor takes several times as long.
    """
    return ((logits.max(dim=1).indices == labels) & valid).sum()


def accumulator_dtype_for(device: torch.device) -> torch.dtype:
    """Sums over a whole split lose precision in float32 (a split has ~10^8 pixels); MPS has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def loss_weight_of(labels: torch.Tensor, class_weights: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """The denominator of CrossEntropyLoss's weighted mean for these labels (ignored pixels count 0)."""
    valid = labels != IGNORE_INDEX
    if class_weights is None:
        return valid.sum(dtype=dtype)
    return (class_weights[labels.masked_fill(~valid, 0)] * valid).sum(dtype=dtype)
