"""What a dataset photo is tagged with: the garment classes its annotations say are visible in it.

A photo <root>/photos/NNNN.jpg with image-level tags has <root>/annotations/image-level/NNNN.mat (variable
'tags', 1×n class indices into <root>/label_list.mat); one with a pixel-level label only (either layout) is
tagged with the classes of its label, so that tag-annotated and pixel-annotated photos are scored alike.
"""

from functools import cache
from pathlib import Path

import numpy as np

from evaluation.garment_groups import read_group_table
from helpers.dataset_layouts import ORIGINAL_LAYOUT
from helpers.errors import ClothVisionError
from inference.dataset_labels import dataset_label_and_decoder, find_dataset_label
from label_encoder import LabelEncoder, read_mat_variable

IMAGE_LEVEL_FOLDER = "annotations/image-level"
TAGS_VARIABLE = "tags"
EXPECTED_TAG_FILE = ("the dataset's image-level annotation (variable 'tags': a 1xn list of class indices of "
                     "label_list.mat)")


def tag_file_of(image_file: Path) -> Path:
    return image_file.parent.parent / IMAGE_LEVEL_FOLDER / f"{image_file.stem}.mat"


def read_tag_file(tag_file: str | Path, class_names: list[str]) -> frozenset[str]:
    """The class names an image-level annotation lists; anything else is refused naming the file."""
    tags = np.ravel(read_mat_variable(tag_file, TAGS_VARIABLE, EXPECTED_TAG_FILE))
    if not np.issubdtype(tags.dtype, np.number) or not np.array_equal(tags, np.round(tags)):
        raise ClothVisionError(f"{tag_file}: '{TAGS_VARIABLE}' holds {tags.dtype} values, not class indices: "
                               f"replace it with {EXPECTED_TAG_FILE}")
    outside = [int(tag) for tag in tags if not 0 <= tag < len(class_names)]
    if outside:
        raise ClothVisionError(f"{tag_file}: tag {outside[0]} is no class index (the {len(class_names)} classes "
                               f"are numbered 0-{len(class_names) - 1}): replace it with {EXPECTED_TAG_FILE}")
    return frozenset(class_names[int(tag)] for tag in tags)


@cache
def _label_list(class_file: Path) -> list[str]:
    return LabelEncoder.from_class_file(class_file).class_names


def photo_tags(image_file: str | Path) -> frozenset[str]:
    """The classes a dataset photo is tagged with: its image-level tags, else the classes of its label."""
    image_file = Path(image_file)
    tag_file = tag_file_of(image_file)
    if tag_file.is_file():
        class_file = image_file.parent.parent / ORIGINAL_LAYOUT.class_file
        if not class_file.is_file():
            raise ClothVisionError(f"{class_file} is missing, so the classes of tag file {tag_file} are unknown: "
                                   f"restore the dataset's {ORIGINAL_LAYOUT.class_file}")
        return read_tag_file(tag_file, _label_list(class_file.resolve()))
    if find_dataset_label(image_file) is None:
        raise ClothVisionError(f"photo {image_file} has neither image-level tags ({tag_file}) nor a pixel-level "
                               "label: --score-tags scores dataset photos (…/photos/NNNN.jpg beside "
                               "annotations/image-level/ or annotations/pixel-level/)")
    label_file, decoder = dataset_label_and_decoder(image_file)
    label = LabelEncoder(decoder.class_names, decoder.palette).encode_file(label_file)
    return frozenset(decoder.class_names[index] for index in np.unique(label))


def garment_group_of_class() -> dict[str, str]:
    """{garment class: its group} in the group table's order; background, skin and hair are no garments."""
    return {class_name: group.name for group in read_group_table() if group.is_garment
            for class_name in group.classes}
