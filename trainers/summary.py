"""summary.md: one row per trained model, the numbers a reader compares first, and the paired comparison
of every two models scored on the same test images."""

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from evaluation.bootstrap import MIN_SEEDS, format_with_interval, image_statistics, paired_difference, verdict
from helpers.atomic_files import atomic_write_text


@dataclass(frozen=True)
class ModelSummary:
    """What one model's run reached; test numbers come from its best checkpoint on the test split."""

    model_name: str
    parameters: int
    epochs_run: int
    best_epoch: int
    best_val_miou: float
    test_pixel_accuracy: float
    test_miou: float
    test_fw_iou: float
    test_group_miou: float
    seconds_per_epoch: float
    learning_rates: str
    # The test report's 95 % bootstrap intervals, {"pixel_accuracy"|"miou"|"group_miou": [low, high]};
    # None for reports written before they existed.
    test_intervals: dict | None = None

    def test_cell(self, metric: str, value: float) -> str:
        """A test metric as a fraction, or, when the report has intervals, as '9.3 % (8.1–10.4)'."""
        if self.test_intervals is None:
            return f"{value:.4f}"
        return format_with_interval(value, self.test_intervals[metric])


HEADER = (
    "| model | parameters | epochs run | best val mIoU (epoch) | test pixel acc | test mIoU | test fw-IoU "
    "| test group mIoU | seconds / epoch | Adam learning rates at the start |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
)


def summary_markdown(summaries: list[ModelSummary]) -> str:
    rows = [
        f"| {item.model_name} | {item.parameters / 1e6:.2f} M | {item.epochs_run} "
        f"| {item.best_val_miou:.4f} ({item.best_epoch}) "
        f"| {item.test_cell('pixel_accuracy', item.test_pixel_accuracy)} | {item.test_cell('miou', item.test_miou)} "
        f"| {item.test_fw_iou:.4f} | {item.test_cell('group_miou', item.test_group_miou)} "
        f"| {item.seconds_per_epoch:.1f} "
        f"| {item.learning_rates} |\n"
        for item in summaries
    ]
    return (
        "# Training summary\n\nTest metrics are those of each model's best checkpoint (highest val mIoU) on "
        "the test split; mIoU averages the classes present in that split's ground truth, group mIoU the garment "
        "groups (evaluation/garment_groups.json) present in it; in brackets, where measured, the 95 % bootstrap "
        "interval over the test images.\n\n" + HEADER + "".join(rows)
    )


def paired_comparison_markdown(image_confusion: dict[str, np.ndarray]) -> str:
    """For every two models (in the order given), the test mIoU difference with its 95 % paired-bootstrap
    interval: both models recomputed on the same 1000 resamples of the test images."""
    statistics = {name: image_statistics(matrices) for name, matrices in image_confusion.items()}
    names = list(statistics)
    rows = []
    for first, second in combinations(names, 2):
        compared = paired_difference(statistics[first], statistics[second])
        low, high = (100 * bound for bound in compared["interval"])
        rows.append(f"| {first} − {second} | {100 * compared['difference']:+.1f} | {low:+.1f} to {high:+.1f} "
                    f"| {verdict(first, second, compared['interval'], 1, 1)} |\n")
    return (
        "\n## Paired comparison\n\nTest mIoU difference in points, with its 95 % paired-bootstrap interval over "
        "the test images (the same resampled images for both models, at the annotations' own size). It covers "
        f"which photos were tested, not training randomness: a verdict needs {MIN_SEEDS} seeds per model "
        "(a study, scripts/study.py).\n\n"
        "| models | mIoU difference | 95 % interval | |\n|---|---:|---:|---|\n" + "".join(rows)
    )


def write_summary(summaries: list[ModelSummary], path: str | Path,
                  image_confusion: dict[str, np.ndarray] | None = None) -> Path:
    """summary.md; with image_confusion (model name -> its N×K×K per-image test confusion matrices, same images
    in the same order), the paired comparison too."""
    text = summary_markdown(summaries)
    if image_confusion is not None and len(image_confusion) > 1:
        text += paired_comparison_markdown(image_confusion)
    return atomic_write_text(path, text)
