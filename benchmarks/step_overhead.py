"""How much time ModelTrainer adds to a bare forward/backward/optimizer step of the same model.

The bare loop gets its batches ready-made (normalised float tensors) and does nothing but forward,
cross-entropy, backward and Adam's step. The trainer's epoch does the same on the same shapes, plus
everything it really does per step: gathering, flipping and normalising the batch from uint8 tensors,
the loss weight bookkeeping, train accuracy and the progress bar. Both run a whole epoch of `steps`
steps, taking turns, so a slow spell of a shared machine lands on both alike.
"""

from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.throughput import build_trainer, new_model
from benchmarks.timing import median_seconds_alternating, synchronizer
from dataset import CACHE_FORMAT_VERSION, Cache
from evaluation.garment_groups import table_class_names
from helpers.batch_augmentation import IGNORE_INDEX
from models import model_kwargs_for
from preprocess import IMAGENET_MEAN, IMAGENET_STD

# The CCP class list, whose garment groups a trainer looks up.
CLASS_NAMES = table_class_names()
NUM_CLASSES = len(CLASS_NAMES)


def synthetic_cache(num_images: int, image_size: tuple[int, int], seed: int = 0) -> Cache:
    """An in-memory cache of random images and labels; every image is in the train split. It has no
    labels at their own size (training never reads them)."""
    rng = np.random.default_rng(seed)
    height, width = image_size
    labels = rng.integers(0, NUM_CLASSES, size=(num_images, height, width), dtype=np.uint8)
    meta = {
        "format_version": CACHE_FORMAT_VERSION,
        "class_names": CLASS_NAMES,
        "palette": [[index, index, index] for index in range(NUM_CLASSES)],
        "image_size": [height, width],
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "ids": [f"{index:04d}" for index in range(num_images)],
        "split": {"train": list(range(num_images)), "val": [0], "test": [0]},
        "train_class_pixel_counts": np.bincount(labels.ravel(), minlength=NUM_CLASSES).tolist(),
        "native_label_shapes": {},
    }
    images = rng.integers(0, 256, size=(num_images, 3, height, width), dtype=np.uint8)
    return Cache(images, labels, meta, Path("synthetic"))


def measure_step_overhead(
    model_name: str = "unet",
    model_kwargs: dict | None = None,
    image_size: tuple[int, int] = (128, 80),
    batch_size: int = 8,
    steps: int = 4,
    repeats: int = 5,
    device: str | torch.device = "cpu",
    precision: str = "auto",
) -> dict:
    """Median seconds per step of the bare loop and of ModelTrainer.train_one_epoch, and the overhead in %.

    model_kwargs default to a U-net of base width 16 (the registry's constructor arguments otherwise).
    """
    device = torch.device(device)
    if model_kwargs is None:
        model_kwargs = model_kwargs_for(model_name, unet_base_width=16)
    cache = synthetic_cache(batch_size * steps, image_size)
    trainer = build_trainer(new_model(model_name, NUM_CLASSES, model_kwargs), model_name, model_kwargs, cache,
                            device, batch_size, Path("unused"), precision=precision)
    bare_model = trainer.precision.place(new_model(model_name, NUM_CLASSES, model_kwargs), device).train()
    bare_optimizer = torch.optim.Adam(bare_model.parameters(), lr=trainer.options.learning_rate)
    criterion = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
    batches = list(trainer.loaders["train"])

    def bare_epoch() -> None:
        for images, labels in batches:
            with trainer.precision.autocast():
                logits = bare_model(trainer.precision.place(images, device))
            loss = criterion(logits.float(), labels)
            bare_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            bare_optimizer.step()

    epoch_seconds = median_seconds_alternating(
        {"bare": bare_epoch, "trainer": lambda: trainer.train_one_epoch(1)},
        repeats=repeats,
        synchronize=synchronizer(device),
    )
    bare, trained = epoch_seconds["bare"] / steps, epoch_seconds["trainer"] / steps
    return {
        "model_name": model_name,
        "image_size": list(image_size),
        "batch_size": batch_size,
        "device": str(device),
        "bare_seconds_per_step": bare,
        "trainer_seconds_per_step": trained,
        "overhead_percent": 100.0 * (trained - bare) / bare,
    }
