"""The two ways a predictor runs a network: a PyTorch module, or an exported ONNX file in ONNX Runtime.

Both map a normalised float32 batch N×3×H×W (on the back end's device) to float32 logits N×C×H×W;
everything about the photo happens once, in the predictor. Each loader returns the checkpoint's entries
(class names, palette, image size, mean/std, ...) beside the back end.
"""

from pathlib import Path

import numpy as np
import torch
from torch import nn

from helpers.checkpoint import load_checkpoint
from helpers.devices import Precision, resolve_device, resolve_precision
from helpers.errors import ClothVisionError, error_reason
from inference.onnx_format import INPUT_NAME, OUTPUT_NAME, checkpoint_entries, import_package
from models import build_model_from_checkpoint

TORCH_INFERENCE_KEYS = (
    "model_name", "model_kwargs", "state_dict", "class_names", "palette", "image_size", "mean", "std",
)
# ONNX Runtime runs here on its CPU execution provider, in the float32 the file was exported in.
ONNX_DEVICES = ("auto", "cpu")
ONNX_PRECISIONS = ("auto", "fp32")


class TorchBackend:
    """A network in PyTorch, on a device, at a precision (bf16 autocast + channels_last, or float32)."""

    def __init__(self, model: nn.Module, device: torch.device, precision: Precision):
        self.device, self.precision = device, precision
        self.model = precision.place(model.eval(), device)

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        with self.precision.autocast():
            return self.model(self.precision.place(batch, self.device)).float()

    def describe(self) -> str:
        return f"PyTorch, {self.precision.describe()}"


class OnnxRuntimeBackend:
    """An exported ONNX model in an ONNX Runtime session on the CPU, float32."""

    device = torch.device("cpu")

    def __init__(self, model: str | Path | bytes):
        onnxruntime = import_package("onnxruntime", "running an ONNX model")
        options = onnxruntime.SessionOptions()
        # As many threads as PyTorch uses, so the two back ends get the same share of the machine.
        options.intra_op_num_threads = torch.get_num_threads()
        source = model if isinstance(model, bytes) else str(model)
        self.session = onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        images = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        (logits,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: images})
        return torch.from_numpy(logits)

    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def describe(self) -> str:
        return "ONNX Runtime, float32"


def load_torch_checkpoint(path: Path, device: str, precision: str) -> tuple[dict, TorchBackend]:
    """A .pt checkpoint written by train.py: its entries and its network rebuilt in PyTorch."""
    checkpoint = load_checkpoint(path, map_location="cpu")
    missing = [key for key in TORCH_INFERENCE_KEYS if key not in checkpoint]
    if missing:
        raise ClothVisionError(f"checkpoint {path} lacks {', '.join(missing)}: pass a checkpoint written by train.py")
    resolved_device = resolve_device(device)
    resolved_precision = resolve_precision(precision, resolved_device)
    try:
        model = build_model_from_checkpoint(checkpoint)
    except RuntimeError as error:
        raise ClothVisionError(f"checkpoint {path}: its weights do not fit a '{checkpoint['model_name']}' model "
                               f"({error_reason(error)}); pass a checkpoint written by train.py") from None
    return checkpoint, TorchBackend(model, resolved_device, resolved_precision)


def load_onnx_checkpoint(path: Path, device: str, precision: str) -> tuple[dict, OnnxRuntimeBackend]:
    """An .onnx file written by export.py: the entries in its metadata and an ONNX Runtime session."""
    if device not in ONNX_DEVICES or precision not in ONNX_PRECISIONS:
        raise ClothVisionError(f"checkpoint {path} runs in ONNX Runtime on the CPU in float32, not with device "
                               f"'{device}' and precision '{precision}': leave both at auto, or pass the .pt "
                               "checkpoint")
    if not path.is_file():
        raise ClothVisionError(f"checkpoint {path} not found: export one with 'python export.py CHECKPOINT "
                               f"--out {path}' or pass the path of an existing .onnx file")
    import_package("onnxruntime", f"checkpoint {path}")
    try:
        backend = OnnxRuntimeBackend(path)
    # ONNX Runtime's own exception types (InvalidProtobuf, Fail, ...) for a file that is no ONNX model.
    except Exception as error:
        raise ClothVisionError(f"checkpoint {path} is not an ONNX model ONNX Runtime can load "
                               f"({error_reason(error)}): pass an .onnx file written by export.py") from None
    return checkpoint_entries(backend.metadata(), path), backend
