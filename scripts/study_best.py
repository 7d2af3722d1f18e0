"""What a study measures on its best run (highest test mIoU) after training: the gain of flip test-time
augmentation with its paired interval (the same resampled test images with and without), and what
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
from scripts.study_plan import StudyProfile, TrainingRun
from scripts.study_training import say
from trainers.evaluation import evaluate_checkpoint
from trainers.report import read_image_confusion

# The --min-share values tried on the val split.
MIN_SHARE_CANDIDATES = (0.0, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05)


def best_run(runs: list[TrainingRun], reports: dict[str, dict]) -> TrainingRun:
    return max((run for run in runs if run.label in reports), key=lambda run: reports[run.label]["miou"])


def flip_tta_gain(run: TrainingRun, profile: StudyProfile) -> dict:
    """{metric: {"difference": flip − none, "interval": [low, high]}} for pixel accuracy and mIoU."""
    checkpoint = run.out_dir / f"{run.model}.pt"
    flipped = evaluate_checkpoint(checkpoint, profile.cache_dir, "test", device=profile.device,
                                  precision=profile.precision, tta="flip")
    _, plain = read_image_confusion(run.out_dir / f"{run.model}_test.json")
    with_flip, without = image_statistics(flipped["image_confusion"]), image_statistics(plain)
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


def tag_scores(run: TrainingRun, profile: StudyProfile, data_dir: Path, tags_dir: Path) -> dict | None:
    """The min share chosen on the val split (best class-level micro F1), and the scores at it on the tag
    photos; None when tags_dir holds no photo with image-level tags only."""
    # A dry run (image_limit) scores a few photos only: it checks the steps, not the numbers.
    tag_photos = tag_photo_files(tags_dir)[:profile.image_limit]
    if not tag_photos:
        say(f"{tags_dir} holds no photo with image-level tags only: garment detection is not scored")
        return None
    predictor = SegmentationPredictor(run.out_dir / f"{run.model}.pt", profile.device, profile.precision)
    photo_of_id = {sample.image_id: sample.photo_path for sample in find_dataset(data_dir).samples}
    val_photos = [photo_of_id[image_id] for image_id in predictor.split_ids["val"]]
    with contextlib.redirect_stdout(io.StringIO()):
        val = described(val_photos, predictor)
        on_val = {share: scores_at(val, share) for share in MIN_SHARE_CANDIDATES}
        chosen = max(MIN_SHARE_CANDIDATES, key=lambda share: on_val[share]["micro"]["f1"] or 0.0)
        report = scores_at(described(tag_photos, predictor), chosen)
    return {"run": run.label, "min_share": chosen, "val_f1": {share: on_val[share]["micro"]["f1"]
                                                                for share in MIN_SHARE_CANDIDATES},
            "val": on_val[chosen], "tags": report, "tags_dir": str(tags_dir)}


def best_run_text(run: TrainingRun, gain: dict, tags: dict | None) -> str:
    """The summary's section on the best run."""
    def points(compared: dict) -> str:
        low, high = (100 * bound for bound in compared["interval"])
        return f"{100 * compared['difference']:+.2f} points (95 % paired interval {low:+.2f} to {high:+.2f})"

    lines = [f"## The best run: {run.label}", "",
             f"Flip test-time augmentation (`--tta flip`) against none, on the same test images: pixel accuracy "
             f"{points(gain['pixel_accuracy'])}, mIoU {points(gain['miou'])}.", ""]
    if tags is not None:
        tried = ", ".join(f"{share:g}: {f1 or 0:.3f}" for share, f1 in tags["val_f1"].items())
        lines += [f"Garment detection (`img_test.py --describe --score-tags`): --min-share {tags['min_share']:g}, "
                  f"chosen on the val split (class-level micro F1 per --min-share: {tried}). On the "
                  f"{tags['tags']['photos']} photos of {tags['tags_dir']} that only have image-level tags:", "",
                  "```", tag_score_table(tags["tags"]), "```", "",
                  f"The same on the val split ({tags['val']['photos']} photos, tags from their labels):", "",
                  "```", tag_score_table(tags["val"]), "```", ""]
    return "\n".join(lines)
