"""Evaluate a saved checkpoint on one split of a cache: the split the checkpoint itself was trained with.

    from trainers.evaluation import evaluate_checkpoint
    evaluate_checkpoint("results/unet.pt", "data/processed", "test")
"""

from dataclasses import replace
from pathlib import Path

from dataset import Cache, load_cache
from helpers.checkpoint import build_model_from_checkpoint, load_checkpoint
from helpers.devices import resolve_device
from helpers.errors import ClothVisionError
from trainers import trainer_class_for
from trainers.options import DEFAULT_OPTIONS, DEFAULT_RUN, TrainingOptions


def checkpoint_split_cache(checkpoint: dict, checkpoint_path: str | Path, cache: Cache, split: str) -> Cache:
    """The cache with `split` made of the images the checkpoint's own split put there, found by id.

    A cache rebuilt with another --seed or --limit splits the images differently: scoring a checkpoint on
    that cache's own test split would partly score it on its training images, without a word.
    """
    if list(checkpoint["image_size"]) != list(cache.meta["image_size"]):
        height, width = checkpoint["image_size"]
        raise ClothVisionError(
            f"checkpoint {checkpoint_path} was trained on {height}x{width} images, cache {cache.cache_dir} "
            f"holds {cache.meta['image_size'][0]}x{cache.meta['image_size'][1]}: evaluate it on a cache made "
            f"with `python preprocess.py --size {height} {width}`"
        )
    cache.split_indices(split)  # an unknown split name is refused here, naming the valid ones
    wanted = checkpoint["split_ids"][split]
    row_of_id = {image_id: row for row, image_id in enumerate(cache.meta["ids"])}
    missing = [image_id for image_id in wanted if image_id not in row_of_id]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ClothVisionError(
            f"cache {cache.cache_dir} lacks {len(missing)} of the {len(wanted)} {split} images of checkpoint "
            f"{checkpoint_path} ({shown}): evaluate it on a cache that holds them (preprocess without --limit)"
        )
    rows = sorted(row_of_id[image_id] for image_id in wanted)
    return replace(cache, meta={**cache.meta, "split": {**cache.meta["split"], split: rows}})


def evaluate_checkpoint(
    checkpoint_path: str | Path,
    data: str | Path = DEFAULT_RUN.data,
    split: str = "val",
    device: str = DEFAULT_RUN.device,
    batch_size: int = DEFAULT_OPTIONS.batch_size,
    precision: str = DEFAULT_OPTIONS.precision,
) -> dict:
    """Loss, confusion matrix and metrics of a saved checkpoint on one split, in one process.

    The split is the checkpoint's own (its recorded image ids), taken from the cache in `data` whatever
    that cache's split; a cache at another image size or without those images is refused.
    """
    checkpoint = load_checkpoint(checkpoint_path)
    cache = load_cache(data)
    if checkpoint["class_names"] != cache.class_names:
        raise ClothVisionError(
            f"checkpoint {checkpoint_path} was trained on other classes than cache {data}: "
            "evaluate it on the cache it was trained on"
        )
    cache = checkpoint_split_cache(checkpoint, checkpoint_path, cache, split)
    name = checkpoint["model_name"]
    options = TrainingOptions(
        batch_size=batch_size,
        class_weights=checkpoint["args"]["class_weights"],
        precision=precision,
        show_progress=False,
    )
    trainer = trainer_class_for(name)(
        build_model_from_checkpoint(checkpoint),
        name,
        checkpoint["model_kwargs"],
        cache,
        resolve_device(device),
        Path(checkpoint_path).parent,
        options,
    )
    return trainer.evaluate(split)
