"""The two layouts the CCP dataset ships in on disk (the original repository's, and the Kaggle
re-packaging), and finding a dataset's photo/label pairs in a folder of either."""

import os
from dataclasses import dataclass
from pathlib import Path

from helpers.errors import ClothVisionError

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
CACHE_META_FILE = "meta.json"
WHERE_TO_GET_DATA = "run `python preprocess.py --download` or see data/README.md"


@dataclass(frozen=True)
class Layout:
    """Where one on-disk form of the dataset keeps its photos, labels and class list."""

    name: str
    title: str
    photo_folder: str
    label_folder: str
    label_suffix: str
    class_file: str

    def describe(self) -> str:
        return f"{self.photo_folder}/ + {self.label_folder}/*{self.label_suffix} + {self.class_file}"


ORIGINAL_LAYOUT = Layout("ccp", "original CCP", "photos", "annotations/pixel-level", ".mat", "label_list.mat")
KAGGLE_LAYOUT = Layout("kaggle", "Kaggle", "images", "labels/pixel_level_labels_colored", ".png",
                       "class_dict.csv")
# The original layout first: its labels are class indices already, the Kaggle one's are colours.
LAYOUTS = (ORIGINAL_LAYOUT, KAGGLE_LAYOUT)


@dataclass(frozen=True)
class Sample:
    image_id: str
    photo_path: Path
    label_path: Path


@dataclass
class SourceDataset:
    """A dataset found on disk: its layout, class list file (label_encoder.LabelEncoder.from_class_file reads it)
    and the annotated photos, sorted by id."""

    root: Path
    layout: Layout
    class_file: Path
    samples: list[Sample]
    unannotated_photo_count: int


def find_layout(data_dir: Path) -> Layout | None:
    """The layout whose label folder exists under data_dir (the original one if both do)."""
    return next((layout for layout in LAYOUTS if (data_dir / layout.label_folder).is_dir()), None)


def find_dataset(data_dir: str | os.PathLike) -> SourceDataset:
    """Detect the layout under data_dir and pair every label with its photo."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ClothVisionError(f"data folder {data_dir} does not exist: {WHERE_TO_GET_DATA}")
    layout = find_layout(data_dir)
    if layout is None and (data_dir / CACHE_META_FILE).is_file():
        raise ClothVisionError(f"data folder {data_dir} is a preprocess.py cache, not a dataset: train on it with "
                               f"`python train.py --data {data_dir}`, or pass the dataset folder to --data")
    if layout is None:
        contents = [entry.name for entry in data_dir.iterdir() if entry.name != "README.md"]
        problem = "is empty" if not contents else "holds no CCP dataset"
        raise ClothVisionError(
            f"data folder {data_dir} {problem}: expected {ORIGINAL_LAYOUT.describe()} "
            f"({ORIGINAL_LAYOUT.title}) or {KAGGLE_LAYOUT.describe()} ({KAGGLE_LAYOUT.title}); "
            f"{WHERE_TO_GET_DATA}"
        )
    for required in (layout.photo_folder, layout.class_file):
        if not (data_dir / required).exists():
            raise ClothVisionError(
                f"{data_dir / required} is missing, but {data_dir / layout.label_folder} exists: "
                f"the {layout.title} layout needs {layout.describe()}; restore it ({WHERE_TO_GET_DATA})"
            )
    labels = {path.stem: path for path in sorted((data_dir / layout.label_folder).iterdir())
              if path.suffix.lower() == layout.label_suffix}
    if not labels:
        raise ClothVisionError(
            f"{data_dir / layout.label_folder} holds no *{layout.label_suffix} labels: {WHERE_TO_GET_DATA}"
        )
    photos = {}
    for path in sorted((data_dir / layout.photo_folder).iterdir()):
        if path.suffix.lower() in PHOTO_SUFFIXES:
            photos.setdefault(path.stem, path)
    orphans = sorted(labels.keys() - photos.keys())
    if orphans:
        raise ClothVisionError(
            f"{labels[orphans[0]]} has no photo {data_dir / layout.photo_folder / orphans[0]}.jpg "
            f"({len(orphans)} labels lack their photo): restore the photos or delete those labels"
        )
    samples = [Sample(image_id, photos[image_id], labels[image_id]) for image_id in sorted(labels)]
    return SourceDataset(data_dir, layout, data_dir / layout.class_file, samples, len(photos.keys() - labels.keys()))
