"""bench.py row 8: what describing the garments (shares and colours) adds to predicting a photo on the CPU.

The description's cost depends on the class map (how many garments, how large), not on the model, while an
untrained model's map is no person at all; so the map described is the photo's ground-truth label, a map as a
good model would predict it, and the prediction timed beside it is img_test's, at the photo's own size.
"""

import tempfile
from pathlib import Path

from benchmarks.model_rows import ModelSetting
from benchmarks.table import Row, format_seconds
from benchmarks.throughput import new_model
from benchmarks.timing import median_seconds_alternating
from evaluation.garment_groups import garment_groups_for
from helpers.checkpoint import save_checkpoint
from helpers.dataset_layouts import SourceDataset
from helpers.image_io import read_rgb_image
from inference.attire import describe_class_map
from inference.predictor import SegmentationPredictor
from label_encoder import LabelEncoder

DESCRIBE_GOAL = "<= 20 %"


def fresh_predictor(setting: ModelSetting, meta: dict, work_dir: Path | None) -> SegmentationPredictor:
    """A randomly initialised model, saved with what inference needs as train.py saves one, and loaded back."""
    model = new_model(setting.name, len(meta["class_names"]), setting.model_kwargs)
    with tempfile.TemporaryDirectory(prefix="clothvision-describe-", dir=work_dir) as folder:
        checkpoint = save_checkpoint(Path(folder) / "fresh.pt", {
            "model_name": setting.name, "model_kwargs": setting.model_kwargs, "state_dict": model.state_dict(),
            "class_names": meta["class_names"], "palette": meta["palette"],
            "image_size": list(setting.image_size), "mean": meta["mean"], "std": meta["std"],
        })
        return SegmentationPredictor(checkpoint, "cpu", "fp32")


def measure_description_cost(setting: ModelSetting, trained_checkpoint: Path | None, meta: dict,
                             dataset: SourceDataset, repeats: int, work_dir: Path | None = None) -> Row:
    """Predicting the dataset's first photo alone, and followed by describing its label, alternated; with the
    trained checkpoint when there is one (an untrained model's noisy scores make the upsampling slower)."""
    if trained_checkpoint is None:
        predictor, model_described = fresh_predictor(setting, meta, work_dir), f"{setting.describe()}, fresh"
    else:
        predictor = SegmentationPredictor(trained_checkpoint, "cpu", "fp32")
        model_described = f"{predictor.model_name} of {trained_checkpoint.name}"
    sample = dataset.samples[0]
    image = read_rgb_image(sample.photo_path)
    encoder = LabelEncoder.from_class_file(dataset.class_file)
    label = encoder.encode_file(sample.label_path)
    groups = garment_groups_for(encoder.class_names)
    garments = describe_class_map(label, image, groups)
    seconds = median_seconds_alternating({
        "predict": lambda: predictor.predict(image),
        "describe": lambda: (predictor.predict(image), describe_class_map(label, image, groups)),
    }, repeats=repeats)
    return Row(
        "describe garments",
        f"predict: {format_seconds(seconds['predict'])}/photo",
        f"predict + describe: {format_seconds(seconds['describe'])}/photo",
        f"{100 * (seconds['describe'] / seconds['predict'] - 1):+.1f} % time",
        DESCRIBE_GOAL,
        f"{model_described}, {sample.photo_path.name} ({image.width}×{image.height}), cpu, float32; the "
        f"{len(garments)} garments of its label described; median of {repeats} alternated",
    )
