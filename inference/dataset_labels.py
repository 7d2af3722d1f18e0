"""The ground-truth label of a dataset photo, found beside it in either layout, and the dataset's own classes.

A photo <root>/photos/NNNN.jpg (original layout) or <root>/images/NNNN.jpg (Kaggle layout) has its label under
the same root; figures show it beside a prediction, and --use-labels describes photos from it.
"""

import json
from functools import cache
from pathlib import Path

import numpy as np

from helpers.dataset_layouts import KAGGLE_LAYOUT, LAYOUTS, ORIGINAL_LAYOUT
from helpers.errors import ClothVisionError
from label_decoder import LabelDecoder
from label_encoder import LabelEncoder

# Where each dataset layout keeps the label of <root>/<photo folder>/NNNN.jpg, best first. The Kaggle
# layout's .mat comes before its coloured PNG: the PNG is painted with class_dict.csv's colours, which
# a checkpoint trained on the original layout (generated palette) does not know.
KAGGLE_MAT_FOLDER = "labels/pixel_level_labels_mat"
DATASET_LABEL_FILES = {
    ORIGINAL_LAYOUT.photo_folder: (f"{ORIGINAL_LAYOUT.label_folder}/{{id}}{ORIGINAL_LAYOUT.label_suffix}",),
    KAGGLE_LAYOUT.photo_folder: (f"{KAGGLE_MAT_FOLDER}/{{id}}.mat",
                                 f"{KAGGLE_LAYOUT.label_folder}/{{id}}{KAGGLE_LAYOUT.label_suffix}"),
}
WHERE_LABELS_ARE = ("ground-truth labels exist for dataset photos only (…/photos/NNNN.jpg beside "
                    "annotations/pixel-level/NNNN.mat, or …/images/NNNN.jpg in the Kaggle layout)")


def find_dataset_label(image_file: str | Path) -> Path | None:
    """The label of a dataset photo (photos/NNNN.jpg or images/NNNN.jpg beside the annotations), if any."""
    image_file = Path(image_file)
    dataset_root = image_file.parent.parent
    for pattern in DATASET_LABEL_FILES.get(image_file.parent.name, ()):
        candidate = dataset_root / pattern.format(id=image_file.stem)
        if candidate.is_file():
            return candidate
    return None


def recorded_dataset_folder(training_arguments: dict) -> Path | None:
    """The dataset folder the training run's cache was made from, as preprocess.py recorded it in the cache's
    meta.json; None when the run, its cache or the record is not there any more."""
    if not training_arguments.get("data"):
        return None
    meta_path = Path(str(training_arguments["data"])) / "meta.json"
    try:
        source = json.loads(meta_path.read_text(encoding="utf-8")).get("source_dir")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(source) if isinstance(source, str) and Path(source).is_dir() else None


def read_label(label_file: str | Path, decoder: LabelDecoder, image_file: str | Path,
               image_size: tuple[int, int]) -> np.ndarray:
    """A .mat annotation or a label image painted with the decoder's palette, as HxW class indices."""
    label_file = Path(label_file)
    if not label_file.is_file():
        raise ClothVisionError(f"label {label_file} not found: check the path, or leave the label out")
    label = LabelEncoder(decoder.class_names, decoder.palette).encode_file(label_file)
    width, height = image_size
    if label.shape != (height, width):
        raise ClothVisionError(f"label {label_file} is {label.shape[1]}x{label.shape[0]} pixels but image "
                               f"{image_file} is {width}x{height}: pass the label of this image")
    return label


@cache
def _dataset_decoder(class_file: Path) -> LabelDecoder:
    encoder = LabelEncoder.from_class_file(class_file)
    return LabelDecoder(encoder.class_names, encoder.palette, source=str(class_file))


def dataset_label_and_decoder(image_file: str | Path) -> tuple[Path, LabelDecoder]:
    """A dataset photo's label file and its dataset's classes and colours (label_list.mat or class_dict.csv)."""
    image_file = Path(image_file)
    label_file = find_dataset_label(image_file)
    if label_file is None:
        raise ClothVisionError(f"photo {image_file} has no ground-truth label: {WHERE_LABELS_ARE}; "
                               "leave out --use-labels to describe a model's prediction instead")
    layout = next(layout for layout in LAYOUTS if layout.photo_folder == image_file.parent.name)
    class_file = image_file.parent.parent / layout.class_file
    if not class_file.is_file():
        raise ClothVisionError(f"{class_file} is missing, so the classes of label {label_file} are unknown: "
                               f"restore the dataset's {layout.class_file}")
    return label_file, _dataset_decoder(class_file.resolve())
