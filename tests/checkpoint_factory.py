"""Real, tiny checkpoints in train.py's format (untrained, or fitted to a few photos in seconds), so inference
tests need no training run."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from synthetic_ccp import CLASS_NAMES, PALETTE

from dataset import normalisation_scale_and_shift
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


def write_model_checkpoint(path: str | Path, model_name: str, model: torch.nn.Module, model_kwargs: dict,
                           image_size: tuple[int, int] = (32, 24), **entries) -> Path:
    """Save model the way train.py saves a best checkpoint; entries add or replace keys."""
    return save_checkpoint(path, {
        "model_name": model_name, "model_kwargs": model_kwargs, "state_dict": model.state_dict(),
        "class_names": CLASS_NAMES, "palette": PALETTE, "image_size": list(image_size),
        "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "epoch": 1, "best_epoch": 1, "metrics": {},
        "history": [], "args": {"model": model_name}, "cache_format_version": 1, "split_ids": SPLIT_IDS,
        **entries,
    })


def write_tiny_checkpoint(path: str | Path, image_size: tuple[int, int] = (32, 24),
                          constant_class: int | None = None, **entries) -> Path:
    """Save tiny_unet() the way train.py saves a best checkpoint; entries add or replace keys."""
    entries = {"model_name": "unet", "model_kwargs": TINY_UNET_KWARGS, **entries}
    return write_model_checkpoint(path, model=tiny_unet(constant_class), image_size=image_size, **entries)


def fitted_tiny_unet(photos: list[Image.Image], labels: list[np.ndarray], image_size: tuple[int, int],
                     steps: int = 40) -> torch.nn.Module:
    """tiny_unet() trained for a few Adam steps on these photos and labels (H×W class indices), resized to
    image_size and normalised as the predictor does: its scores are decisive (clear margins between the
    best two classes) and its maps hold several classes, unlike an untrained network's near-ties."""
    height, width = image_size
    scale, shift = normalisation_scale_and_shift({"mean": IMAGENET_MEAN, "std": IMAGENET_STD})
    pixels = torch.stack([torch.from_numpy(np.array(photo.resize((width, height), Image.BILINEAR))).permute(2, 0, 1)
                          for photo in photos])
    images = torch.addcmul(shift, pixels.float(), scale)
    targets = torch.stack([torch.from_numpy(np.array(Image.fromarray(label).resize((width, height), Image.NEAREST)))
                           for label in labels]).long()
    model = tiny_unet().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()
