"""The ONNX file export.py writes: one network mapping normalised images to logits, plus as metadata
everything a .pt checkpoint carries for inference, so the .onnx file is as self-contained as the .pt.

Writing needs torch's exporter (the packages onnx and onnxscript); reading needs only onnxruntime. Each
metadata entry is a JSON string in the model's metadata_props, so any ONNX tool can read it.
"""

import importlib
import json
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from helpers.errors import ClothVisionError

ONNX_SUFFIX = ".onnx"
ONNX_FORMAT = "clothvision-onnx"
ONNX_FORMAT_VERSION = 1
INPUT_NAME = "images"
OUTPUT_NAME = "logits"
# torch's exporter writes opset 18 and newer; asked for less, it silently keeps 18.
MIN_OPSET = 18
DEFAULT_OPSET = 18
EXPORT_REQUIREMENTS = "requirements-export.txt"
# torch's exporter writes with onnx and onnxscript; ONNX Runtime runs what it wrote.
WRITING_PACKAGES = ("onnx", "onnxscript")
EXPORT_PACKAGES = (*WRITING_PACKAGES, "onnxruntime")
# What a predictor cannot work without; every other entry (metrics, split) is informative.
REQUIRED_METADATA = ("format", "format_version", "model_name", "class_names", "palette", "image_size", "mean",
                     "std")
CHECKPOINT_ENTRIES = ("model_name", "model_kwargs", "class_names", "palette", "image_size", "mean", "std",
                      "epoch", "split_ids")


def import_package(name: str, needed_by: str) -> ModuleType:
    """Import an optional package of requirements-export.txt, or say which one to install."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ClothVisionError(f"{needed_by} needs the package '{name}', which is not installed: "
                               f"pip install -r {EXPORT_REQUIREMENTS}") from None


def is_onnx_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ONNX_SUFFIX


class LogitsOnly(nn.Module):
    """The network with torchvision's {'out': logits} unwrapped, so every exported file has one output."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)


def scalar_metrics(metrics: dict) -> dict:
    """The numbers of a metrics dict, without its tensors (confusion matrix) and per-class lists."""
    return {name: value for name, value in metrics.items()
            if isinstance(value, int | float) and not isinstance(value, bool)}


def metadata_of(checkpoint: dict, test_metrics: dict | None) -> dict[str, str]:
    """The metadata_props of a checkpoint's ONNX file: its inference entries, its validation metrics
    (those of the epoch it was saved at) and, when known, its test-split metrics; JSON-encoded."""
    entries = {"format": ONNX_FORMAT, "format_version": ONNX_FORMAT_VERSION}
    entries |= {key: checkpoint[key] for key in CHECKPOINT_ENTRIES if key in checkpoint}
    entries["val_metrics"] = scalar_metrics(checkpoint.get("metrics", {}))
    if test_metrics is not None:
        entries["test_metrics"] = test_metrics
    return {key: json.dumps(value) for key, value in entries.items()}


def export_to_onnx(model: nn.Module, image_size: tuple[int, int], opset: int = DEFAULT_OPSET,
                   metadata: dict[str, str] | None = None) -> bytes:
    """The serialised ONNX model of model in eval mode: float32 images N×3×H×W at image_size (the batch
    dimension N dynamic) -> logits N×C×H×W, with metadata as metadata_props."""
    for package in WRITING_PACKAGES:
        import_package(package, "exporting to ONNX")
    if opset < MIN_OPSET:
        raise ClothVisionError(f"opset {opset} is too old for torch's ONNX exporter: use --opset {MIN_OPSET} or "
                               "newer")
    # Eval mode is what inference means: BatchNorm on its running statistics. A network left in training
    # mode (as a freshly built one is) normalises with each batch's own statistics instead: a tiny U-net's
    # logits then differ from the exported eval-mode graph's by half their range.
    was_training = model.training
    # A batch of two, so the exporter cannot specialise the dynamic batch dimension to the size 1.
    example = torch.zeros(2, 3, *image_size)
    try:
        program = torch.onnx.export(LogitsOnly(model).eval(), (example,), dynamo=True, opset_version=opset,
                                    verbose=False, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes=({0: torch.export.Dim("batch")},))
    finally:
        model.train(was_training)
    model_proto = program.model_proto
    for key, value in (metadata or {}).items():
        model_proto.metadata_props.add(key=key, value=value)
    return model_proto.SerializeToString()


def checkpoint_entries(metadata: dict[str, str], path: Path) -> dict:
    """The metadata of an ONNX file read back as the entries of a checkpoint dict."""
    fix = "export it from its .pt checkpoint with 'python export.py CHECKPOINT'"
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise ClothVisionError(f"checkpoint {path} is an ONNX model without ClothVision's metadata (it lacks "
                               f"{', '.join(missing)}): {fix}")
    try:
        entries = {key: json.loads(value) for key, value in metadata.items()}
    except json.JSONDecodeError as error:
        raise ClothVisionError(f"checkpoint {path} has metadata that is not JSON ({error}): {fix}") from None
    if entries["format"] != ONNX_FORMAT or entries["format_version"] != ONNX_FORMAT_VERSION:
        raise ClothVisionError(f"checkpoint {path} has metadata format {entries['format']!r} version "
                               f"{entries['format_version']}, this code reads {ONNX_FORMAT!r} version "
                               f"{ONNX_FORMAT_VERSION}: {fix}")
    return entries
