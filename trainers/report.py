"""The test report: <split> metrics at the annotations' own size with their 95 % intervals, the same at the
training size, and how they were measured; written by train.py as <model>_test.json and by
`train.py --evaluate` wherever --out says, always beside the per-image confusion matrices it came from."""

import io
import json
from pathlib import Path

import numpy as np

from evaluation.bootstrap import format_with_interval
from helpers.atomic_files import atomic_write, atomic_write_text

# The headline metrics, in the order the report lists them.
METRIC_KEYS = ("pixel_accuracy", "mean_accuracy", "miou", "fw_iou")


def build_test_report(provenance: dict, split: str, ids: list[str], metrics: dict) -> dict:
    """provenance (model, checkpoint, how it was trained) + the native metrics, intervals and the
    training-size metrics of evaluate_at_native_size()."""
    return {
        **provenance,
        "split": split,
        "num_images": len(ids),
        # The loss needs the logits, which are only compared at the training size.
        "loss": metrics["at_training_size"]["loss"],
        **{key: metrics[key] for key in METRIC_KEYS},
        "resolution": metrics["resolution"],
        "tta": metrics["tta"],
        "intervals": metrics["intervals"],
        "per_class_iou": metrics["per_class_iou"],
        "garment_groups": metrics["garment_groups"],
        "confusion_matrix": metrics["confusion_matrix"],
        "at_training_size": metrics["at_training_size"],
    }


def images_path(report_path: Path) -> Path:
    """unet_test.json -> unet_test_images.npz."""
    return report_path.with_name(report_path.stem + "_images.npz")


def write_test_report(report: dict, ids: list[str], image_confusion: np.ndarray, path: Path) -> Path:
    """The report as JSON at path, and the per-image confusion matrices beside it (images_path)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, ids=np.asarray(ids), image_confusion=image_confusion)
    atomic_write(images_path(path), lambda temporary: Path(temporary).write_bytes(buffer.getvalue()))
    return atomic_write_text(path, json.dumps(report, indent=1) + "\n")


def read_image_confusion(report_path: Path) -> tuple[list[str], np.ndarray]:
    """The ids and N×K×K per-image confusion matrices written beside a test report."""
    with np.load(images_path(report_path), allow_pickle=False) as archive:
        return archive["ids"].tolist(), archive["image_confusion"]


def describe_report(report: dict) -> str:
    """One line: the headline metrics with their intervals, and how they were measured."""
    intervals = report["intervals"]
    return (
        f"pixel accuracy {format_with_interval(report['pixel_accuracy'], intervals['pixel_accuracy'])}, "
        f"mIoU {format_with_interval(report['miou'], intervals['miou'])}, "
        f"garment-group mIoU {format_with_interval(report['garment_groups']['miou'], intervals['group_miou'])}, "
        f"mean accuracy {100 * report['mean_accuracy']:.1f} %, fw-IoU {100 * report['fw_iou']:.1f} % "
        f"(at the annotations' own size, TTA {report['tta']}, 95 % bootstrap intervals over "
        f"{report['num_images']} images; at the training size: pixel accuracy "
        f"{100 * report['at_training_size']['pixel_accuracy']:.1f} %, mIoU "
        f"{100 * report['at_training_size']['miou']:.1f} %)"
    )
