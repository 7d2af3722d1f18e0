"""Model registry: every architecture is built by name with the same arguments.

    from models import get_model, MODEL_NAMES, MODEL_REGISTRY
    model = get_model("resnet50", num_classes=59, pretrained="imagenet")
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn

from errors import ClothVisionError
from models.deeplabv3 import build_deeplabv3, load_deeplabv3_weights_file
from models.unet import UNet
from models.weights import load_weights_file

PRETRAINED_CHOICES = ("none", "imagenet", "coco")


@dataclass(frozen=True)
class ModelEntry:
    # build(num_classes, pretrained, **model_kwargs) -> nn.Module
    build: Callable[..., nn.Module]
    # load_weights_file(model, path): fills a built model from a local state dict
    load_weights_file: Callable[[nn.Module, str | Path], None]
    transfer_learning: bool
    default_learning_rate: float
    description: str


def _build_unet(num_classes: int, pretrained: str, base_width: int = 70) -> UNet:
    # No pretrained U-net exists: it always starts from random weights, so pretrained does not apply.
    return UNet(num_classes, base_width=base_width)


def _deeplabv3_entry(variant_name: str, description: str) -> ModelEntry:
    return ModelEntry(
        build=partial(build_deeplabv3, variant_name),
        load_weights_file=partial(load_deeplabv3_weights_file, variant_name),
        transfer_learning=True,
        # Adam at 1e-4 fine-tunes a pretrained backbone without wrecking its features in the first
        # epochs (the usual rate for fine-tuning segmentation networks with Adam); the trainer may give
        # the backbone a lower rate still than the new head.
        default_learning_rate=1e-4,
        description=description,
    )


MODEL_REGISTRY: dict[str, ModelEntry] = {
    "unet": ModelEntry(
        build=_build_unet,
        load_weights_file=partial(load_weights_file, target="a U-net of the same base width and class count"),
        transfer_learning=False,
        # Trained from scratch with BatchNorm after every convolution: Adam's standard 1e-3 is stable here,
        # and there are no pretrained features for a larger rate to destroy.
        default_learning_rate=1e-3,
        description="U-net from scratch (encoder widths w, 2w, 4w, 8w; bottleneck 16w; w = base_width)",
    ),
    "mobilenetv3": _deeplabv3_entry("mobilenetv3", "DeepLabV3 with a MobileNetV3-Large backbone"),
    "resnet50": _deeplabv3_entry("resnet50", "DeepLabV3 with a ResNet-50 backbone"),
    "resnet101": _deeplabv3_entry("resnet101", "DeepLabV3 with a ResNet-101 backbone"),
}
MODEL_NAMES = tuple(MODEL_REGISTRY)


def get_model(name: str, num_classes: int, pretrained: str = "none", weights_file: str | Path | None = None,
              **model_kwargs) -> nn.Module:
    """Build a registered model with num_classes outputs.

    pretrained ('none', 'imagenet', 'coco') applies to the transfer-learning models; the U-net always starts
    from random weights. weights_file loads a local state dict instead and never downloads. model_kwargs are
    the constructor arguments a checkpoint stores (unet: base_width).
    """
    if name not in MODEL_REGISTRY:
        raise ClothVisionError(f"unknown model '{name}': choose one of {', '.join(MODEL_NAMES)}")
    if pretrained not in PRETRAINED_CHOICES:
        raise ClothVisionError(f"unknown pretrained weights '{pretrained}': choose one of "
                               f"{', '.join(PRETRAINED_CHOICES)}")
    entry = MODEL_REGISTRY[name]
    model = entry.build(num_classes, "none" if weights_file is not None else pretrained, **model_kwargs)
    if weights_file is not None:
        entry.load_weights_file(model, weights_file)
    return model


def logits_of(output: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
    """The logits of any registered model: torchvision's segmentation models return {'out': logits}."""
    return output["out"] if isinstance(output, dict) else output


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(parameter.numel() for parameter in model.parameters()
               if parameter.requires_grad or not trainable_only)
