"""train.py's checks of a run before any training: model names, option values, the cache, --resume."""

from collections.abc import Sequence
from pathlib import Path

from dataset import Cache
from helpers.batch_augmentation import DEFAULT_ZOOM_RANGE
from helpers.checkpoint import load_checkpoint
from helpers.errors import ClothVisionError
from models import MODEL_NAMES, MODEL_REGISTRY
from trainers.distributed import DistributedContext
from trainers.option_lookup import check_option_values, keywords_with_resume_role, option_keyword_names
from trainers.options import TrainingOptions


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


def check_options(names: list[str], options: TrainingOptions) -> None:
    """Every value on its own (trainers.options), then the combinations no single field can judge."""
    check_option_values(options)
    checks = [
        (
            options.weights is None or len(names) == 1,
            "--weights loads one model's state dict: train that single model with --model NAME",
        ),
        (
            options.warmup_epochs < options.epochs,
            f"--warmup-epochs {options.warmup_epochs:g}: warm up for fewer epochs than --epochs {options.epochs}",
        ),
        (
            options.warmup_epochs == 0 or options.time_limit_minutes == float("inf"),
            "--warmup-epochs counts epochs of a run of --epochs: a run under --time-limit-minutes has no known "
            "length to warm up a share of; drop one of them",
        ),
        (
            options.warmup_epochs == 0 or options.lr_schedule != "plateau",
            "--warmup-epochs applies to --lr-schedule poly, cosine and linear, not plateau",
        ),
        (
            options.zoom_range == DEFAULT_ZOOM_RANGE or options.augment == "full",
            f"--zoom-range {options.zoom_range:g} applies to --augment full only: add --augment full or drop "
            "--zoom-range",
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


# Where and how a resumed run runs is this invocation's business, not the interrupted one's.
NEVER_RESUMED = keywords_with_resume_role("never")


def recorded_options(last_checkpoint: Path) -> dict:
    """The options a last checkpoint was trained with, as train()'s keywords ({} when there is none).

    Checkpoints written before <model>_config.json existed record them in 'args' beside a few
    run facts (device, world size, precision used), which are left out.
    """
    if not last_checkpoint.is_file():
        return {}
    # Mapped, not read: the resumed trainer reads the weights and states again anyway.
    checkpoint = load_checkpoint(last_checkpoint, mmap=True)
    recorded = checkpoint["config"]["options"] if "config" in checkpoint else checkpoint["args"]
    known = option_keyword_names()
    return {keyword: value for keyword, value in recorded.items() if keyword in known}
