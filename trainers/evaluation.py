"""Evaluating a saved checkpoint: evaluate_checkpoint() scores it with the training loop's own test evaluation
(trainers.scoring), without an optimizer, a scheduler or any split but the one it scores.

    from trainers.evaluation import evaluate_checkpoint
    evaluate_checkpoint("results/unet.pt", "data/processed", "test")
"""

from dataclasses import replace
from pathlib import Path

from dataset import Cache, DeviceBatchLoader, load_cache, read_meta
from evaluation.garment_groups import garment_groups_for
from helpers.checkpoint import load_checkpoint
from helpers.devices import resolve_device, resolve_precision
from helpers.errors import ClothVisionError
from models import build_model_from_checkpoint
from trainers.losses import LOG_FREQUENCY_OFFSET, class_weights_from_counts
from trainers.options import TrainingOptions
from trainers.report import build_test_report
from trainers.scoring import evaluate_at_native_size


def cache_at_size_advice(cache: Cache, image_size: list[int], image_ids: list[str]) -> str:
    """Where to evaluate instead: a cache beside this one at image_size that holds image_ids, else the command
    that makes one under a name of its own (rebuilding this cache at another size would replace it)."""
    wanted = set(image_ids)
    for sibling in sorted(cache.cache_dir.parent.iterdir()):
        meta = read_meta(sibling)
        if meta is not None and meta.get("image_size") == image_size and wanted <= set(meta.get("ids", [])):
            return f"evaluate it with --data {sibling}, the cache at that size"
    height, width = image_size
    out = cache.cache_dir.parent / f"{cache.cache_dir.name}_{height}x{width}"
    return (f"make a cache at that size with `python preprocess.py --data {cache.meta.get('source_dir', 'data')} "
            f"--size {height} {width} --out {out}`, then evaluate it with --data {out}")


def checkpoint_split_cache(checkpoint: dict, checkpoint_path: str | Path, cache: Cache, split: str) -> Cache:
    """The cache with `split` made of the images the checkpoint's own split put there, found by id.

    A cache rebuilt with another --seed or --limit splits the images differently: scoring a checkpoint on
    that cache's own test split would partly score it on its training images, without a word.
    """
    if list(checkpoint["image_size"]) != list(cache.meta["image_size"]):
        height, width = checkpoint["image_size"]
        raise ClothVisionError(
            f"checkpoint {checkpoint_path} was trained on {height}x{width} images, cache {cache.cache_dir} "
            f"holds {cache.meta['image_size'][0]}x{cache.meta['image_size'][1]}: "
            f"{cache_at_size_advice(cache, [height, width], checkpoint['split_ids'][split])}"
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


DEFAULTS = TrainingOptions()


def evaluate_checkpoint(
    checkpoint_path: str | Path,
    data: str | Path = DEFAULTS.data,
    split: str = "val",
    device: str = DEFAULTS.device,
    batch_size: int = DEFAULTS.batch_size,
    precision: str = DEFAULTS.precision,
    tta: str = DEFAULTS.tta,
    show_progress: bool = False,
) -> dict:
    """The report of a saved checkpoint on one split ('val' or 'test'), in one process, in the form of
    <model>_test.json: metrics at the annotations' own size with 95 % intervals, 'at_training_size' beside
    them (with the loss), 'image_ids' and 'image_confusion', the per-image confusion matrices in split order.

    The split is the checkpoint's own (its recorded image ids), taken from the cache in `data` whatever
    that cache's split; a cache at another image size or without those images is refused. show_progress
    shows a progress bar over the split's batches.
    """
    checkpoint = load_checkpoint(checkpoint_path)
    cache = load_cache(data)
    if checkpoint["class_names"] != cache.class_names:
        raise ClothVisionError(
            f"checkpoint {checkpoint_path} was trained on other classes than cache {data}: "
            "evaluate it on the cache it was trained on"
        )
    cache = checkpoint_split_cache(checkpoint, checkpoint_path, cache, split)
    target = resolve_device(device)
    chosen_precision = resolve_precision(precision, target)
    # Checkpoints written before the offset was an option used ENet's.
    weights = class_weights_from_counts(cache.meta["train_class_pixel_counts"], checkpoint["args"]["class_weights"],
                                        checkpoint["args"].get("class_weight_offset", LOG_FREQUENCY_OFFSET))
    model = chosen_precision.place(build_model_from_checkpoint(checkpoint), target)
    loader = DeviceBatchLoader(cache, split, batch_size, target)
    metrics = evaluate_at_native_size(model, loader, cache.native_labels(split), chosen_precision,
                                      garment_groups_for(cache.class_names),
                                      None if weights is None else weights.to(target), tta,
                                      f"{checkpoint['model_name']} {split}" if show_progress else None)
    provenance = {"model_name": checkpoint["model_name"], "checkpoint": str(checkpoint_path),
                  "best_epoch": checkpoint["epoch"], "precision": chosen_precision.name}
    report = build_test_report(provenance, split, loader.ids, metrics)
    return {**report, "image_ids": loader.ids, "image_confusion": metrics["image_confusion"]}
