"""Evaluation as plain functions, shared by the training loop and evaluate_checkpoint.

evaluate(): loss and confusion-matrix metrics of a split at the training size (the per-epoch val pass).
evaluate_at_native_size(): the test evaluation as the field measures it: the same pass, and each image's
logits upsampled bilinearly to its annotation's own size (evaluation.upsampling.upsampled_argmax, the
predictor's own code), one confusion matrix per image at that size, their sum for the metrics and the
per-image matrices for 95 % bootstrap intervals over the images.
"""

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from dataset import DeviceBatchLoader
from evaluation.bootstrap import bootstrap_intervals, image_statistics
from evaluation.garment_groups import GarmentGroups
from evaluation.test_time_augmentation import augmented_logits
from evaluation.upsampling import upsampled_argmax
from helpers.batch_augmentation import IGNORE_INDEX
from helpers.devices import Precision
from trainers.distributed import all_reduce_sum
from trainers.metrics import (
    ConfusionMatrix,
    accumulator_dtype_for,
    group_metrics,
    loss_weight_of,
    metrics_from_confusion,
)


def evaluate(
    model: nn.Module,
    loader: DeviceBatchLoader,
    precision: Precision,
    garment_groups: GarmentGroups,
    class_weights: torch.Tensor | None = None,
    tta: str = "none",
    each_batch: Callable[[torch.Tensor], None] | None = None,
    progress: str | None = None,
) -> dict:
    """Loss and confusion-matrix metrics of `model` over the loader's whole split (all ranks' shares
    together under torchrun), per class and per garment group; each_batch(logits) sees every batch's float32
    logits (after the test-time augmentation tta), in the loader's order. A progress label shows a progress
    bar over the batches under it, as training's (on a terminal).

    The loss is sum(weight × pixel loss) / sum(weight) over every pixel of the split, the weighted mean that
    CrossEntropyLoss takes over a batch, so it does not depend on the batch size.
    """
    device = loader.device
    criterion = nn.CrossEntropyLoss(weight=class_weights, reduction="sum", ignore_index=IGNORE_INDEX)
    confusion = ConfusionMatrix(len(loader.class_names), device)
    totals = torch.zeros(2, dtype=accumulator_dtype_for(device), device=device)
    model.eval()
    # no_grad rather than inference_mode: tensors a compiled graph caches under inference_mode could
    # not be used by the training graph afterwards.
    with torch.no_grad():
        batches = tqdm(loader, total=len(loader), desc=progress, leave=False, dynamic_ncols=True,
                       disable=None if progress else True)
        for images, labels in batches:
            with precision.autocast():
                logits = augmented_logits(lambda batch: model(precision.place(batch, device)), images, tta).float()
            totals += torch.stack(
                [criterion(logits, labels).to(totals.dtype), loss_weight_of(labels, class_weights, totals.dtype)]
            )
            confusion.update(logits.argmax(dim=1), labels)
            if each_batch is not None:
                each_batch(logits)
    loss_sum, loss_weight = all_reduce_sum(totals).tolist()
    confusion.reduce_across_processes()
    metrics = confusion.compute(loader.class_names)
    metrics["loss"] = loss_sum / loss_weight
    metrics["confusion_matrix"] = confusion.matrix.cpu()
    metrics["garment_groups"] = group_metrics(metrics["confusion_matrix"], garment_groups)
    return metrics


def scored_metrics(matrix: torch.Tensor, class_names: list[str], groups: GarmentGroups) -> dict:
    """The report's metric keys from one confusion matrix."""
    metrics = metrics_from_confusion(matrix, class_names)
    return {
        "pixel_accuracy": metrics["pixel_accuracy"],
        "mean_accuracy": metrics["mean_accuracy"],
        "miou": metrics["miou"],
        "fw_iou": metrics["fw_iou"],
        "per_class_iou": metrics["iou_by_class_name"],
        "garment_groups": group_metrics(matrix, groups),
        "confusion_matrix": torch.as_tensor(matrix).tolist(),
    }


def image_confusion(prediction: np.ndarray, label: np.ndarray, num_classes: int) -> np.ndarray:
    """K×K confusion matrix (rows true, columns predicted) of one class map against its label."""
    pairs = label.astype(np.int64).ravel() * num_classes + prediction.ravel()
    return np.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def evaluate_at_native_size(
    model: nn.Module,
    loader: DeviceBatchLoader,
    native_labels: list[np.ndarray],
    precision: Precision,
    garment_groups: GarmentGroups,
    class_weights: torch.Tensor | None = None,
    tta: str = "none",
    progress: str | None = None,
) -> dict:
    """The test report's metrics: at the annotations' own size (the headline), with intervals, and
    'at_training_size' (with the loss) from the same logits. 'image_confusion' holds the N×K×K per-image
    matrices in split order (for paired comparisons). Under torchrun every rank scores its share and the
    per-image matrices are summed across ranks, so every rank returns the whole split's report."""
    device, num_classes = loader.device, len(loader.class_names)
    per_image = np.zeros((len(native_labels), num_classes, num_classes), dtype=np.int64)
    positions = iter(loader.positions())

    def score_each_image_natively(logits: torch.Tensor) -> None:
        for image_logits in logits:
            position = next(positions)
            label = native_labels[position]
            per_image[position] = image_confusion(upsampled_argmax(image_logits, *label.shape), label, num_classes)

    at_training_size = evaluate(model, loader, precision, garment_groups, class_weights, tta,
                                score_each_image_natively, progress)
    per_image = all_reduce_sum(torch.from_numpy(per_image).to(device)).cpu().numpy()
    report = scored_metrics(torch.from_numpy(per_image.sum(axis=0)), loader.class_names, garment_groups)
    training_size = scored_metrics(at_training_size["confusion_matrix"], loader.class_names, garment_groups)
    statistics = image_statistics(per_image, garment_groups.group_index)
    return {
        **report,
        "resolution": "native",
        "tta": tta,
        "intervals": bootstrap_intervals(statistics),
        "at_training_size": {"loss": at_training_size["loss"], **training_size},
        "image_confusion": per_image,
    }
