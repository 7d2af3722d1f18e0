"""train.py's checks of a run before any training: model names, option values, the cache, --resume."""

from collections.abc import Sequence
from pathlib import Path

from dataset import AUGMENT_CHOICES, Cache
from helpers.devices import PRECISION_CHOICES
from helpers.errors import ClothVisionError
from models import MODEL_NAMES, MODEL_REGISTRY
from trainers.distributed import DistributedContext
from trainers.options import CLASS_WEIGHT_CHOICES, TrainingOptions


def parse_model_names(text: str | Sequence[str]) -> list[str]:
    """'all', one name or a comma-separated list (or a list of names) -> registry names, in order."""
    names = text.split(",") if isinstance(text, str) else list(text)
    names = [name.strip() for name in names if name.strip()]
    if names == ["all"]:
        return list(MODEL_NAMES)
    unknown = [name for name in names if name not in MODEL_REGISTRY]
    if unknown or not names:
        raise ClothVisionError(
            f"unknown model '{','.join(unknown)}': choose one of {', '.join(MODEL_NAMES)}, "
            "a comma-separated list of them, or all"
        )
    return list(dict.fromkeys(names))


def check_options(
    names: list[str],
    options: TrainingOptions,
    lr: float | None,
    backbone_lr_factor: float | None,
    weights: str | None,
    dist_timeout: float,
) -> None:
    checks = [
        (options.epochs >= 1, f"--epochs {options.epochs}: train at least 1 epoch"),
        (options.batch_size >= 1, f"--batch-size {options.batch_size}: use at least 1 image per batch"),
        (lr is None or lr > 0, f"--lr {lr}: the learning rate must be positive"),
        (
            options.time_limit_minutes > 0,
            f"--time-limit-minutes {options.time_limit_minutes:g}: use a positive number of minutes",
        ),
        (
            options.class_weights in CLASS_WEIGHT_CHOICES,
            f"--class-weights {options.class_weights}: use one of {', '.join(CLASS_WEIGHT_CHOICES)}",
        ),
        (
            options.freeze_backbone_epochs >= 0,
            f"--freeze-backbone-epochs {options.freeze_backbone_epochs}: use 0 (never frozen) or more",
        ),
        (
            backbone_lr_factor is None or backbone_lr_factor > 0,
            f"--backbone-lr-factor {backbone_lr_factor}: use a positive factor "
            "(freeze the backbone with --freeze-backbone-epochs instead)",
        ),
        (options.augment in AUGMENT_CHOICES, f"--augment {options.augment}: use one of {', '.join(AUGMENT_CHOICES)}"),
        (
            options.precision in PRECISION_CHOICES,
            f"--precision {options.precision}: use one of {', '.join(PRECISION_CHOICES)}",
        ),
        (dist_timeout > 0, f"--dist-timeout {dist_timeout}: use a positive number of seconds"),
        (
            weights is None or len(names) == 1,
            "--weights loads one model's state dict: train that single model with --model NAME",
        ),
        # DeepLabV3's image-pooling branch normalises 1×1 features: BatchNorm needs two images to do that.
        (
            options.batch_size >= 2 or not any(MODEL_REGISTRY[name].transfer_learning for name in names),
            "--batch-size 1 cannot train the DeepLabV3 models: the BatchNorm after their image pooling needs "
            "at least 2 images per batch",
        ),
    ]
    for passed, message in checks:
        if not passed:
            raise ClothVisionError(message)


def check_cache_fits(cache: Cache, batch_size: int, context: DistributedContext) -> None:
    """Every split must hold images, and the train split a full batch for every process."""
    for split in ("train", "val", "test"):
        if len(cache.split_indices(split)) == 0:
            raise ClothVisionError(
                f"cache {cache.cache_dir} has no {split} images: preprocess more images "
                "(drop --limit) with `python preprocess.py`"
            )
    train_images = len(cache.split_indices("train"))
    if train_images // context.world_size < batch_size:
        raise ClothVisionError(
            f"cache {cache.cache_dir} has {train_images} train images for {context.world_size} "
            f"process(es), fewer than one batch of {batch_size} each: lower --batch-size"
        )


def check_resumable_outputs(names: list[str], out: Path) -> None:
    """--resume continues every model that has a last checkpoint; at least one must have it."""
    if not any((out / f"{name}_last.pt").is_file() for name in names):
        expected = ", ".join(str(out / f"{name}_last.pt") for name in names)
        raise ClothVisionError(
            f"--resume found no last checkpoint ({expected}): pass the --out folder of the "
            "interrupted run, or train without --resume"
        )
