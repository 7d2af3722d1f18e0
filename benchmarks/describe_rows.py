"""bench.py row 9: what describing the garments (shares and colours) adds to predicting a photo on the CPU."""

import tempfile
from pathlib import Path

from benchmarks.model_rows import ModelSetting
from benchmarks.table import Row, format_seconds
from benchmarks.throughput import new_model
from benchmarks.timing import median_seconds_alternating
from helpers.checkpoint import save_checkpoint
from helpers.image_io import read_rgb_image
from inference.attire import DEFAULT_MINIMUM_SHARE, describe_class_map
from inference.garment_groups import garment_groups_for
from inference.predictor import SegmentationPredictor

DESCRIBE_GOAL = "<= 20 %"


def write_fresh_checkpoint(path: Path, setting: ModelSetting, meta: dict) -> Path:
    """A randomly initialised model saved with what inference needs, as train.py saves one."""
    model = new_model(setting.name, len(meta["class_names"]), setting.model_kwargs)
    return save_checkpoint(path, {
        "model_name": setting.name, "model_kwargs": setting.model_kwargs, "state_dict": model.state_dict(),
        "class_names": meta["class_names"], "palette": meta["palette"], "image_size": list(setting.image_size),
        "mean": meta["mean"], "std": meta["std"],
    })


def measure_description_cost(setting: ModelSetting, photo_file: Path, meta: dict, repeats: int,
                             work_dir: Path | None = None) -> Row:
    """img_test's prediction of one photo at its own size, alone and followed by its description, alternated."""
    image = read_rgb_image(photo_file)
    groups = garment_groups_for(meta["class_names"])
    with tempfile.TemporaryDirectory(prefix="clothvision-describe-", dir=work_dir) as folder:
        predictor = SegmentationPredictor(write_fresh_checkpoint(Path(folder) / "fresh.pt", setting, meta), "cpu",
                                          "fp32")
    garments = describe_class_map(predictor.predict(image), image, groups, DEFAULT_MINIMUM_SHARE)
    seconds = median_seconds_alternating({
        "predict": lambda: predictor.predict(image),
        "describe": lambda: describe_class_map(predictor.predict(image), image, groups, DEFAULT_MINIMUM_SHARE),
    }, repeats=repeats)
    return Row(
        "describe garments",
        f"predict: {format_seconds(seconds['predict'])}/photo",
        f"predict + describe: {format_seconds(seconds['describe'])}/photo",
        f"{100 * (seconds['describe'] / seconds['predict'] - 1):+.1f} % time",
        DESCRIBE_GOAL,
        f"{setting.describe()}, freshly initialised, {photo_file.name} ({image.width}×{image.height}), cpu, "
        f"float32, {len(garments)} garments of at least {DEFAULT_MINIMUM_SHARE:.0%} described, median of "
        f"{repeats} alternated",
    )
