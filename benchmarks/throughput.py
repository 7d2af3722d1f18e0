"""Trainers built the way train.py builds them, and their measured training throughput."""

from pathlib import Path

import torch
from torch import nn

from benchmarks.timing import median_seconds_alternating, synchronizer
from dataset import Cache
from models import default_learning_rates, get_model
from trainers import ModelTrainer, TrainingOptions, trainer_class_for


def build_trainer(model: nn.Module, model_name: str, model_kwargs: dict, cache: Cache, device: torch.device,
                  batch_size: int, output_dir: Path, precision: str = "auto", augment: str = "full") -> ModelTrainer:
    """The trainer train.py would use for this model from scratch, at its rates, without progress bars."""
    rates = default_learning_rates(model_name)
    options = TrainingOptions(batch_size=batch_size, show_progress=False, learning_rate=rates.learning_rate,
                              backbone_lr_factor=rates.backbone_lr_factor, precision=precision, augment=augment)
    return trainer_class_for(model_name)(model, model_name, model_kwargs, cache, device, output_dir, options)


def new_model(model_name: str, num_classes: int, model_kwargs: dict) -> nn.Module:
    """A randomly initialised model (nothing downloaded), seeded so that runs compare like with like."""
    torch.manual_seed(0)
    return get_model(model_name, num_classes, pretrained="none", **model_kwargs)


def trainer_images_per_second(trainer: ModelTrainer, epochs: int = 1) -> float:
    """Training images per second of whole train_one_epoch passes (after one warm-up epoch), median of epochs.

    The warm-up epoch absorbs one-off costs: cuDNN's algorithm search, allocator growth, lazy initialisation.
    """
    seconds = median_seconds_alternating({"epoch": lambda: trainer.train_one_epoch(1)}, repeats=epochs,
                                         warmup=1, synchronize=synchronizer(trainer.device))["epoch"]
    loader = trainer.loaders["train"]
    return len(loader) * loader.batch_size / seconds
