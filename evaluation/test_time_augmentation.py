"""Test-time augmentation: the scores of a batch averaged with those of its mirror image, mirrored back.

CCP has no left/right classes, so a mirrored photo has the mirrored label and both predictions score the
same pixels; every human-parsing codebase evaluates this way. Written once here, for the predictor (both of
its back ends) and the training loop's test evaluation alike.
"""

from collections.abc import Callable

import torch

from helpers.errors import ClothVisionError

TTA_CHOICES = ("none", "flip")
DEFAULT_TTA = "none"


def check_tta(tta: str) -> str:
    """tta itself, if it is one of TTA_CHOICES."""
    if tta not in TTA_CHOICES:
        raise ClothVisionError(f"test-time augmentation '{tta}' is unknown: use one of {', '.join(TTA_CHOICES)}")
    return tta


def augmented_logits(forward: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                     tta: str) -> torch.Tensor:
    """forward(images) (logits N×C×H×W of images N×3×H×W) under the test-time augmentation tta.

    'flip' runs two forwards of the batch, not one of a doubled batch: the peak memory stays that of one
    forward, so a batch size chosen to fit without augmentation fits with it, and the time is twice that of
    one forward either way once the network is compute-bound (bench.py's flip TTA row measures it).
    """
    if check_tta(tta) == "none":
        return forward(images)
    return (forward(images) + forward(images.flip(-1)).flip(-1)) / 2
