"""Choose the torch device from a command-line word, and the numeric precision models run in there.

Precision is one decision made here for the trainer, evaluation, the predictor, bench.py and the studies:
bf16 autocast with channels_last memory layout where the hardware computes bf16 natively (CUDA GPUs,
and CPUs with AVX512-BF16 or AMX instructions), float32 elsewhere. Only the network's forward pass runs
under autocast; losses, loss sums, metrics and confusion matrices stay in float32/float64.
"""

import contextlib
from dataclasses import dataclass

import torch

from helpers.errors import ClothVisionError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
PRECISION_CHOICES = ("auto", "bf16", "fp32")


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then MPS, then CPU; asking for an absent accelerator is a user error."""
    if name not in DEVICE_CHOICES and not name.startswith("cuda:"):
        raise ClothVisionError(f"unknown device '{name}': use one of {', '.join(DEVICE_CHOICES)}")
    mps_available = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available else torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ClothVisionError(f"device '{name}' was asked for but CUDA is not available here: use --device cpu")
    if name == "mps" and not mps_available:
        raise ClothVisionError("device 'mps' was asked for but MPS is not available here: use --device cpu")
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX), as torch's own dispatcher sees it.

    Without them bf16 autocast still works on a CPU but is emulated, and slower than float32.
    """
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


@dataclass(frozen=True)
class Precision:
    """How a model runs on one device: 'bf16' (autocast + channels_last) or 'fp32'."""

    name: str
    device_type: str

    @property
    def uses_bf16(self) -> bool:
        return self.name == "bf16"

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context the forward pass runs in."""
        if self.uses_bf16:
            return torch.autocast(self.device_type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def place(self, model_or_images, device: torch.device):
        """Move a model or an image batch to device, in channels_last layout under bf16: oneDNN's and
        cuDNN's fastest bf16 convolutions want that layout."""
        moved = model_or_images.to(device)
        return moved.to(memory_format=torch.channels_last) if self.uses_bf16 else moved

    def describe(self) -> str:
        return "bf16 autocast, channels_last" if self.uses_bf16 else "float32"


def resolve_precision(name: str, device: torch.device | str) -> Precision:
    """'auto': bf16 on CUDA and on CPUs with native bf16, float32 elsewhere (MPS included)."""
    device = torch.device(device)
    if name not in PRECISION_CHOICES:
        raise ClothVisionError(f"unknown precision '{name}': use one of {', '.join(PRECISION_CHOICES)}")
    if name == "auto":
        native = device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
        name = "bf16" if native else "fp32"
    elif name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ClothVisionError("--precision bf16 was asked for but this GPU has no bf16: use --precision fp32")
    return Precision(name, device.type)
