"""Model registry: every architecture is built by name with the same arguments.

    from models import get_model, MODEL_NAMES, MODEL_REGISTRY
    model = get_model("resnet50", num_classes=59, pretrained="imagenet")
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from torch import nn

from helpers.errors import ClothVisionError
from models.deeplabv3 import build_deeplabv3, load_deeplabv3_weights_file
from models.unet import DEFAULT_BASE_WIDTH, UNet
from models.weights import load_weights_file

PRETRAINED_CHOICES = ("none", "imagenet", "coco")


@dataclass(frozen=True)
class LearningRates:
    """Adam's rate for the network (a DeepLabV3's head) and the factor its backbone's rate is scaled by."""

    learning_rate: float
    backbone_lr_factor: float


# Weights learnt elsewhere are fine-tuned gently: Adam at 1e-4 adapts a pretrained backbone without
# wrecking its features in the first epochs, and the backbone learns ten times slower than the new head.
FINE_TUNING_RATES = LearningRates(1e-4, 0.1)
# A randomly initialised network has nothing to protect: Adam's standard 1e-3 for every parameter. At
# fine-tuning rates a from-scratch ResNet-101 backbone (1e-5) barely moves in a few dozen epochs.
FROM_SCRATCH_RATES = LearningRates(1e-3, 1.0)
# BatchNorm's usual running-statistics momentum. torchvision's MobileNetV3 uses 0.01, tuned for long
# ImageNet runs: from scratch its eval-mode statistics then lag a fast-changing network by ~100 steps and
# validation predicts background for epochs while training already learns.
FROM_SCRATCH_BATCHNORM_MOMENTUM = 0.1


@dataclass(frozen=True)
class ModelEntry:
    # build(num_classes, pretrained, **model_kwargs) -> nn.Module
    build: Callable[..., nn.Module]
    # load_weights_file(model, path): fills a built model from a local state dict
    load_weights_file: Callable[[nn.Module, str | Path], None]
    transfer_learning: bool
    description: str


def _build_unet(num_classes: int, pretrained: str, base_width: int = DEFAULT_BASE_WIDTH, stem: str = "full") -> UNet:
    # No pretrained U-net exists: it always starts from random weights, so pretrained does not apply.
    return UNet(num_classes, base_width=base_width, stem=stem)


def _deeplabv3_entry(variant_name: str, description: str) -> ModelEntry:
    return ModelEntry(
        build=partial(build_deeplabv3, variant_name),
        load_weights_file=partial(load_deeplabv3_weights_file, variant_name),
        transfer_learning=True,
        description=description,
    )


MODEL_REGISTRY: dict[str, ModelEntry] = {
    "unet": ModelEntry(
        build=_build_unet,
        load_weights_file=partial(load_weights_file, target="a U-net of the same base width and class count"),
        transfer_learning=False,
        description="U-net from scratch (encoder widths w, 2w, 4w, 8w; bottleneck 16w; w = base_width; a full-size or "
        "stride-2 stem)",
    ),
    "mobilenetv3": _deeplabv3_entry("mobilenetv3", "DeepLabV3 with a MobileNetV3-Large backbone"),
    "resnet50": _deeplabv3_entry("resnet50", "DeepLabV3 with a ResNet-50 backbone"),
    "resnet101": _deeplabv3_entry("resnet101", "DeepLabV3 with a ResNet-101 backbone"),
}
MODEL_NAMES = tuple(MODEL_REGISTRY)


def starts_from_scratch(name: str, pretrained: str = "none", weights_file: str | Path | None = None) -> bool:
    """The U-net always; a DeepLabV3 when it neither downloads pretrained weights nor loads a weights file."""
    entry = MODEL_REGISTRY[name]
    return not entry.transfer_learning or (pretrained == "none" and weights_file is None)


def default_learning_rates(name: str, pretrained: str = "none",
                           weights_file: str | Path | None = None) -> LearningRates:
    """The learning rates follow where the weights come from: FROM_SCRATCH_RATES or FINE_TUNING_RATES."""
    return FROM_SCRATCH_RATES if starts_from_scratch(name, pretrained, weights_file) else FINE_TUNING_RATES


def get_model(name: str, num_classes: int, pretrained: str = "none", weights_file: str | Path | None = None,
              **model_kwargs) -> nn.Module:
    """Build a registered model with num_classes outputs.

    pretrained ('none', 'imagenet', 'coco') applies to the transfer-learning models; the U-net always starts
    from random weights. weights_file loads a local state dict instead and never downloads. model_kwargs are
    the constructor arguments a checkpoint stores (unet: base_width, and stem when not 'full').
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
    elif starts_from_scratch(name, pretrained):
        set_batchnorm_momentum(model, FROM_SCRATCH_BATCHNORM_MOMENTUM)
    return model


def model_kwargs_for(name: str, unet_base_width: int = DEFAULT_BASE_WIDTH, unet_stem: str = "full") -> dict:
    """The constructor arguments of `name` that a checkpoint records: the U-net's width, and its stem only when
    it is not the original's full-size one, so a full-stem run matches checkpoints written before the stem was
    a choice (and --resume continues them); the DeepLabV3 models take none."""
    if name != "unet":
        return {}
    return {"base_width": unet_base_width, **({} if unet_stem == "full" else {"stem": unet_stem})}


def build_model_from_checkpoint(checkpoint: dict) -> nn.Module:
    """Rebuild the network from a checkpoint alone (no cache, no download) and load its weights."""
    model = get_model(checkpoint["model_name"], len(checkpoint["class_names"]), pretrained="none",
                      **checkpoint["model_kwargs"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def set_batchnorm_momentum(model: nn.Module, momentum: float) -> None:
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = momentum


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(parameter.numel() for parameter in model.parameters()
               if parameter.requires_grad or not trainable_only)
