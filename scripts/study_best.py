"""What a study measures on the run chosen on val (the chosen recipe's seed of highest val mIoU): the gain of
flip test-time augmentation on the val split with its paired interval (the same resampled val images with and
without), which decides whether --tta flip is worth its cost without looking at test; and what
`img_test.py --describe` finds against the image-level tags of photos no model saw, at a --min-share chosen on
the val split (whose photos take their tags from their labels), never on the tag photos."""

import contextlib
import io
from pathlib import Path

from evaluation.bootstrap import image_statistics, paired_difference
from helpers.dataset_layouts import find_dataset
from inference.attire import PredictionSource, describe_photo
from inference.image_tags import garment_group_of_class, photo_tags, tag_file_of
from inference.predictor import SegmentationPredictor
from inference.tag_scores import score_tags, tag_score_table
from scripts.results_table import Run, image_confusion_on_val
from trainers.evaluation import evaluate_checkpoint

# The --min-share values tried on the val split.
MIN_SHARE_CANDIDATES = (0.0, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05)


def flip_tta_gain_on_val(run: Run, cache_dir: Path, device: str) -> dict:
    """{metric: {"difference": flip − none, "interval": [low, high]}} for pixel accuracy and mIoU on val; the
    scores without TTA are those the study's val comparison already wrote beside the checkpoint."""
    checkpoint = run.folder / f"{run.model}.pt"
    with_flip = image_statistics(evaluate_checkpoint(checkpoint, cache_dir, "val", device=device,
                                                     tta="flip")["image_confusion"])
    without = image_statistics(image_confusion_on_val(run))
    return {metric: paired_difference(with_flip, without, metric) for metric in ("pixel_accuracy", "miou")}


def described(photo_files: list[Path], predictor: SegmentationPredictor) -> list[tuple[dict[str, float], frozenset]]:
    """Per photo: {garment: share} of everything predicted (no minimum share) and the photo's tags."""
    source = PredictionSource(predictor, minimum_share=0.0)
    photos = []
    for photo_file in photo_files:
        garments = describe_photo(photo_file, source).description.garments
        photos.append(({garment.name: garment.share for garment in garments}, photo_tags(photo_file)))
    return photos


def scores_at(photos: list[tuple[dict[str, float], frozenset]], min_share: float) -> dict:
    kept = [({name for name, share in shares.items() if share >= min_share}, tags) for shares, tags in photos]
    return score_tags(kept, garment_group_of_class())


def tag_photo_files(tags_dir: Path) -> list[Path]:
    """The photos of a dataset folder that have image-level tags and no pixel-level label."""
    photos = sorted((tags_dir / "photos").glob("*.jpg"))
    return [photo for photo in photos if tag_file_of(photo).is_file()
            and not (tags_dir / "annotations" / "pixel-level" / f"{photo.stem}.mat").is_file()]


def tag_scores(run: Run, device: str, data_dir: Path, tags_dir: Path, image_limit: int | None) -> dict | None:
    """The min share chosen on the val split (best class-level micro F1), and the scores at it on the tag
    photos; None when tags_dir holds no photo with image-level tags only."""
    # A dry run (image_limit) scores a few photos only: it checks the steps, not the numbers.
    tag_photos = tag_photo_files(tags_dir)[:image_limit]
    if not tag_photos:
        return None
    predictor = SegmentationPredictor(run.folder / f"{run.model}.pt", device)
    photo_of_id = {sample.image_id: sample.photo_path for sample in find_dataset(data_dir).samples}
    val_photos = [photo_of_id[image_id] for image_id in predictor.split_ids["val"]]
    with contextlib.redirect_stdout(io.StringIO()):
        val = described(val_photos, predictor)
        on_val = {share: scores_at(val, share) for share in MIN_SHARE_CANDIDATES}
        chosen = max(MIN_SHARE_CANDIDATES, key=lambda share: on_val[share]["micro"]["f1"] or 0.0)
        report = scores_at(described(tag_photos, predictor), chosen)
    return {"min_share": chosen, "val_f1": {share: on_val[share]["micro"]["f1"]
                                                                for share in MIN_SHARE_CANDIDATES},
            "val": on_val[chosen], "tags": report, "tags_dir": str(tags_dir)}


def best_run_text(run: Run, gain: dict, tags: dict | None) -> str:
    """The summary's section on the run chosen on val."""
    def points(compared: dict) -> str:
        low, high = (100 * bound for bound in compared["interval"])
        return f"{100 * compared['difference']:+.2f} points (95 % paired interval {low:+.2f} to {high:+.2f})"

    lines = [f"## The run chosen on val: {run.recipe}, seed {run.seed}", "",
             f"Flip test-time augmentation (`--tta flip`) against none, on the same val images: pixel accuracy "
             f"{points(gain['pixel_accuracy'])}, mIoU {points(gain['miou'])}.", ""]
    if tags is None:
        lines += ["Garment detection is not scored: the tags folder holds no photo with image-level tags only.", ""]
    else:
        tried = ", ".join(f"{share:g}: {f1 or 0:.3f}" for share, f1 in tags["val_f1"].items())
        lines += [f"Garment detection (`img_test.py --describe --score-tags`): --min-share {tags['min_share']:g}, "
                  f"chosen on the val split (class-level micro F1 per --min-share: {tried}). On the "
                  f"{tags['tags']['photos']} photos of {tags['tags_dir']} that only have image-level tags:", "",
                  "```", tag_score_table(tags["tags"]), "```", "",
                  f"The same on the val split ({tags['val']['photos']} photos, tags from their labels):", "",
                  "```", tag_score_table(tags["val"]), "```", ""]
    return "\n".join(lines)
