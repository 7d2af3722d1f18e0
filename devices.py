"""Choose the torch device from a command-line word, and run models the fastest way it allows."""

import contextlib

import torch

from errors import ClothVisionError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def accelerated_forward(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (full-rate tensor cores); plain float32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def on_device(model_or_images, device: torch.device):
    """Move to device, channels_last on CUDA, where cuDNN's fastest convolutions want that layout."""
    moved = model_or_images.to(device)
    return moved.to(memory_format=torch.channels_last) if device.type == "cuda" else moved


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
