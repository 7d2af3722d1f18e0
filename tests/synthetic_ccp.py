"""Small fake CCP datasets in both on-disk layouts, so tests run anywhere without the real photos."""

import csv
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from evaluation.garment_groups import table_class_names

# The real CCP class list, as the garment group table names it, so that everything downstream of a synthetic
# cache (group metrics, descriptions) works as on the real data.
CLASS_NAMES = table_class_names()
NUM_CLASSES = len(CLASS_NAMES)
# Distinct colours, as a class_dict.csv would hold them; the first is the background.
PALETTE = [[(37 * index) % 256, (91 * index + 40) % 256, (53 * index + 90) % 256] for index in range(NUM_CLASSES)]


def synthetic_label(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A background map with a few rectangles of random garment classes, like a coarse person parse."""
    label = np.zeros((height, width), dtype=np.uint8)
    for _ in range(4):
        top, left = rng.integers(0, height - 2), rng.integers(0, width - 2)
        bottom, right = rng.integers(top + 1, height), rng.integers(left + 1, width)
        label[top:bottom, left:right] = rng.integers(1, NUM_CLASSES)
    return label


def synthetic_photo(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An RGB photo whose colours follow the label (so a model can learn it), plus noise."""
    base = np.array(PALETTE, dtype=np.int16)[label]
    noise = rng.integers(-20, 21, size=base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _image_ids(count: int) -> list[str]:
    return [f"{index:04d}" for index in range(1, count + 1)]


def _image_sizes(count: int, size: tuple[int, int], taller_by: int) -> list[tuple[int, int]]:
    """(H, W) of each image: every one taller_by pixels taller than the one before, as the real photos
    vary in height."""
    height, width = size
    return [(height + index * taller_by, width) for index in range(count)]


def write_ccp_layout(root: Path, count: int = 6, size: tuple[int, int] = (40, 28), seed: int = 0,
                     taller_by: int = 0) -> Path:
    """photos/NNNN.jpg, annotations/pixel-level/NNNN.mat ('groundtruth'), label_list.mat ('label_list')."""
    root = Path(root)
    (root / "photos").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "pixel-level").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for image_id, image_size in zip(_image_ids(count), _image_sizes(count, size, taller_by), strict=True):
        label = synthetic_label(*image_size, rng)
        Image.fromarray(synthetic_photo(label, rng)).save(root / "photos" / f"{image_id}.jpg", quality=95)
        scipy.io.savemat(root / "annotations" / "pixel-level" / f"{image_id}.mat", {"groundtruth": label})
    names = np.empty((1, NUM_CLASSES), dtype=object)
    for index, name in enumerate(CLASS_NAMES):
        names[0, index] = np.array([name])
    scipy.io.savemat(root / "label_list.mat", {"label_list": names})
    return root


def write_kaggle_layout(root: Path, count: int = 6, size: tuple[int, int] = (40, 28), seed: int = 0,
                        taller_by: int = 0) -> Path:
    """images/, labels/pixel_level_labels_colored/ (PNG), labels/pixel_level_labels_mat/, class_dict.csv."""
    root = Path(root)
    colored = root / "labels" / "pixel_level_labels_colored"
    mats = root / "labels" / "pixel_level_labels_mat"
    for folder in (root / "images", colored, mats):
        folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    palette = np.array(PALETTE, dtype=np.uint8)
    rows = []
    for image_id, image_size in zip(_image_ids(count), _image_sizes(count, size, taller_by), strict=True):
        label = synthetic_label(*image_size, rng)
        Image.fromarray(synthetic_photo(label, rng)).save(root / "images" / f"{image_id}.jpg", quality=95)
        Image.fromarray(palette[label]).save(colored / f"{image_id}.png")
        scipy.io.savemat(mats / f"{image_id}.mat", {"groundtruth": label})
        rows.append([image_id, f"images/{image_id}.jpg", "pixel-level",
                     f"pixel_level_labels_colored/{image_id}.png", f"pixel_level_labels_mat/{image_id}.mat"])
    with open(root / "class_dict.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["class_name", "r", "g", "b"])
        writer.writerows([["none", *PALETTE[0]]] + [[name, *colour] for name, colour in
                                                     zip(CLASS_NAMES[1:], PALETTE[1:], strict=True)])
    with open(root / "metadata.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "image_path", "label_type", "label_path", "raw_label_path"])
        writer.writerows(rows)
    return root
