"""torchvision's DeepLabV3 on a ResNet-50, ResNet-101 or MobileNetV3-Large backbone, sized for our classes.

The auxiliary classifier is off: the trainers optimise the main output only, and dropping it keeps
every variant's state dict the same whatever weights it started from.

MobileNetV3-Large's BatchNorm layers keep running statistics with momentum 0.01 in torchvision, right for
pretrained weights; a model built from scratch gets the usual 0.1 (models.get_model), or its validation
predictions lag the training network by about a hundred steps.
"""

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.models import MobileNet_V3_Large_Weights, ResNet50_Weights, ResNet101_Weights, WeightsEnum
from torchvision.models.segmentation import (
    DeepLabV3,
    DeepLabV3_MobileNet_V3_Large_Weights,
    DeepLabV3_ResNet50_Weights,
    DeepLabV3_ResNet101_Weights,
    deeplabv3_mobilenet_v3_large,
    deeplabv3_resnet50,
    deeplabv3_resnet101,
)

from models.weights import download_state_dict, load_checked, read_state_dict_file


class DeepLabV3Logits(DeepLabV3):
    """torchvision's DeepLabV3 returning the logits tensor N×C×H×W, as every registered model does, instead of
    {'out': logits}; its state dict is torchvision's, key for key, so checkpoints of either load in both.

    The logits leave the head at 1/8 (ResNet) or 1/16 (MobileNetV3) of the input size and are upsampled here in
    float32 with autocast off: bf16 scores blended 8-16x create ties, which argmax resolves towards the lowest
    class index, the background.
    """

    def __init__(self, model: DeepLabV3):
        super().__init__(model.backbone, model.classifier, model.aux_classifier)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        coarse = self.classifier(self.backbone(images)["out"])
        device_type = images.device.type
        # The meta device of FLOP counting has no autocast to turn off.
        outside_autocast = (torch.autocast(device_type, enabled=False) if torch.amp.is_autocast_available(device_type)
                            else contextlib.nullcontext())
        with outside_autocast:
            return F.interpolate(coarse.float(), size=images.shape[-2:], mode="bilinear", align_corners=False)


# The last 1×1 convolution of torchvision's DeepLabHead: the only layer whose shape depends on the classes.
CLASS_LAYER_KEYS = ("classifier.4.weight", "classifier.4.bias")


@dataclass(frozen=True)
class DeepLabV3Variant:
    constructor: Callable[..., DeepLabV3]
    imagenet_weights: WeightsEnum
    coco_weights: WeightsEnum
    # How the backbone's layers are named inside the ImageNet classification network's state dict, and the
    # prefix of that network's classification layer, which DeepLabV3 does not use.
    feature_prefix: str
    classification_prefix: str


VARIANTS = {
    "resnet50": DeepLabV3Variant(deeplabv3_resnet50, ResNet50_Weights.IMAGENET1K_V1,
                                 DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1, "", "fc."),
    "resnet101": DeepLabV3Variant(deeplabv3_resnet101, ResNet101_Weights.IMAGENET1K_V1,
                                  DeepLabV3_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1, "", "fc."),
    "mobilenetv3": DeepLabV3Variant(deeplabv3_mobilenet_v3_large, MobileNet_V3_Large_Weights.IMAGENET1K_V1,
                                    DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1,
                                    "features.", "classifier."),
}


def build_deeplabv3(variant_name: str, num_classes: int, pretrained: str = "none") -> DeepLabV3Logits:
    """pretrained: 'imagenet' (backbone trained on ImageNet, new head), 'coco' (whole network trained on COCO,
    new final classifier layer) or 'none' (random initialisation). Returns the logits tensor when called."""
    variant = VARIANTS[variant_name]
    model = DeepLabV3Logits(
        variant.constructor(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)
    )
    if pretrained == "imagenet":
        weights = variant.imagenet_weights
        state_dict = download_state_dict(weights, f"ImageNet {variant_name}")
        load_backbone(model, variant_name, state_dict, weights.url)
    elif pretrained == "coco":
        weights = variant.coco_weights
        state_dict = download_state_dict(weights, f"COCO DeepLabV3-{variant_name}")
        load_whole_model(model, variant_name, state_dict, weights.url)
    return model


def fetch_pretrained_weights(variant_name: str, pretrained: str) -> None:
    """Download (into torch's weight cache) what build_deeplabv3 will load, so that a run of several models
    finds a missing download before its first epoch rather than after training the models before it."""
    variant = VARIANTS[variant_name]
    if pretrained == "imagenet":
        download_state_dict(variant.imagenet_weights, f"ImageNet {variant_name}")
    elif pretrained == "coco":
        download_state_dict(variant.coco_weights, f"COCO DeepLabV3-{variant_name}")


def load_deeplabv3_weights_file(variant_name: str, model: DeepLabV3, path: str | Path) -> None:
    """Load a local state dict: a whole DeepLabV3 model (any class count: the final layer is replaced when it
    differs) or only its backbone, with or without the 'backbone.' prefix, or the torchvision ImageNet
    classification network the backbone comes from."""
    state_dict = read_state_dict_file(path)
    is_whole_model = (any(key.startswith("backbone.") for key in state_dict)
                      and any(key.startswith("classifier.") for key in state_dict))
    load = load_whole_model if is_whole_model else load_backbone
    load(model, variant_name, state_dict, f"weights file {path}")


def load_whole_model(model: DeepLabV3, variant_name: str, state_dict: dict, source: str) -> None:
    without_auxiliary = {key: value for key, value in state_dict.items()
                         if not key.startswith("aux_classifier.")}
    load_checked(model, without_auxiliary, source, f"a DeepLabV3-{variant_name} model",
                 replaceable_keys=CLASS_LAYER_KEYS)


def load_backbone(model: DeepLabV3, variant_name: str, state_dict: dict, source: str) -> None:
    variant = VARIANTS[variant_name]
    backbone_state = {}
    for key, value in state_dict.items():
        name = key.removeprefix("backbone.")
        if not name.startswith(variant.classification_prefix):
            backbone_state[name.removeprefix(variant.feature_prefix)] = value
    load_checked(model.backbone, backbone_state, source, f"the {variant_name} backbone of DeepLabV3")
