"""The test evaluation as the field measures it: each image's logits at the training size, upsampled
bilinearly to its annotation's own size (evaluation.upsampling.upsampled_argmax, the predictor's own code),
one confusion matrix per image at that size, their sum for the metrics and the per-image matrices for
95 % bootstrap intervals over the images. The same pass also scores the class maps at the training size,
for comparison with the per-epoch val curves.
"""

import numpy as np
import torch
from torch import nn

from dataset import IGNORE_INDEX, DeviceBatchLoader
from evaluation.bootstrap import bootstrap_intervals, image_statistics
from evaluation.garment_groups import GarmentGroups
from evaluation.test_time_augmentation import augmented_logits
from evaluation.upsampling import upsampled_argmax
from helpers.devices import Precision
from trainers.distributed import all_reduce_sum
from trainers.metrics import (
    ConfusionMatrix,
    accumulator_dtype_for,
    group_metrics,
    loss_weight_of,
    metrics_from_confusion,
)


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
) -> dict:
    """The test report's metrics: at the annotations' own size (the headline), with intervals, and
    'at_training_size' (with the loss) from the same logits. 'image_confusion' holds the N×K×K per-image
    matrices in split order (for paired comparisons). Under torchrun every rank scores its share and the
    per-image matrices are summed across ranks, so every rank returns the whole split's report."""
    device, num_classes = loader.device, len(loader.class_names)
    forward = model.eval()
    criterion = nn.CrossEntropyLoss(weight=class_weights, reduction="sum", ignore_index=IGNORE_INDEX)
    at_training_size = ConfusionMatrix(num_classes, device)
    totals = torch.zeros(2, dtype=accumulator_dtype_for(device), device=device)
    per_image = np.zeros((len(native_labels), num_classes, num_classes), dtype=np.int64)
    positions = iter(loader.positions())
    with torch.no_grad():
        for images, labels in loader:
            with precision.autocast():
                logits = augmented_logits(lambda batch: forward(precision.place(batch, device)), images, tta).float()
            totals += torch.stack(
                [criterion(logits, labels).to(totals.dtype), loss_weight_of(labels, class_weights, totals.dtype)]
            )
            at_training_size.update(logits.argmax(dim=1), labels)
            for image_logits in logits:
                position = next(positions)
                label = native_labels[position]
                per_image[position] = image_confusion(upsampled_argmax(image_logits, *label.shape), label, num_classes)
    loss_sum, loss_weight = all_reduce_sum(totals).tolist()
    at_training_size.reduce_across_processes()
    per_image = all_reduce_sum(torch.from_numpy(per_image).to(device)).cpu().numpy()
    report = scored_metrics(torch.from_numpy(per_image.sum(axis=0)), loader.class_names, garment_groups)
    training_size = scored_metrics(at_training_size.matrix.cpu(), loader.class_names, garment_groups)
    statistics = image_statistics(per_image, garment_groups.group_index)
    return {
        **report,
        "resolution": "native",
        "tta": tta,
        "intervals": bootstrap_intervals(statistics),
        "at_training_size": {"loss": loss_sum / loss_weight, **training_size},
        "image_confusion": per_image,
    }
