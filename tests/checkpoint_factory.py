"""Real, tiny, untrained checkpoints in train.py's format, so inference tests need no training run."""

from pathlib import Path

import torch
from synthetic_ccp import CLASS_NAMES, PALETTE

from helpers.checkpoint import save_checkpoint
from models import get_model

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
TINY_UNET_KWARGS = {"base_width": 4}
SPLIT_IDS = {"train": ["0001", "0003", "0005"], "val": ["0004"], "test": ["0002", "0006"]}


def tiny_unet(constant_class: int | None = None, seed: int = 0) -> torch.nn.Module:
    """A U-net of base width 4 (fast on a CPU) for the 59 synthetic classes. With constant_class its
    classifier ignores the features and scores that class highest everywhere, so predictions are known."""
    torch.manual_seed(seed)
    model = get_model("unet", len(CLASS_NAMES), **TINY_UNET_KWARGS)
    if constant_class is not None:
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.zero_()
            model.classifier.bias[constant_class] = 1.0
    return model


def write_tiny_checkpoint(path: str | Path, image_size: tuple[int, int] = (32, 24),
                          constant_class: int | None = None, **entries) -> Path:
    """Save tiny_unet() the way train.py saves a best checkpoint; entries add or replace keys."""
    model = tiny_unet(constant_class)
    return save_checkpoint(path, {
        "model_name": "unet", "model_kwargs": TINY_UNET_KWARGS, "state_dict": model.state_dict(),
        "class_names": CLASS_NAMES, "palette": PALETTE, "image_size": list(image_size),
        "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "epoch": 1, "best_epoch": 1, "metrics": {},
        "history": [], "args": {"model": "unet"}, "cache_format_version": 1, "split_ids": SPLIT_IDS,
        **entries,
    })
