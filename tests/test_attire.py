"""Descriptions of what a person wears, from any class map and the photo: garments, shares, colours, JSON."""

import json
import re

import numpy as np
import pytest
from PIL import Image
from synthetic_ccp import CLASS_NAMES

from evaluation.garment_groups import garment_groups_for
from helpers.errors import ClothVisionError
from inference.attire import (
    Garment,
    LabelSource,
    PhotoDescription,
    describe_class_map,
    describe_photo,
    read_descriptions,
    write_descriptions,
)

GROUPS = garment_groups_for(CLASS_NAMES)


def index(name: str) -> int:
    return CLASS_NAMES.index(name)


def dressed_person() -> tuple[np.ndarray, Image.Image]:
    """A 100x60 photo: background, a 40x40 grey coat (shadowed on its right half), 20x40 white pants,
    3x10 red shoes, a little skin and hair."""
    class_map = np.zeros((100, 60), dtype=np.uint8)
    photo = np.full((100, 60, 3), (90, 160, 90), dtype=np.uint8)  # a green park behind
    regions = [("hair", (0, 5), (20, 40), (60, 40, 20)), ("skin", (5, 15), (20, 40), (230, 190, 160)),
               ("coat", (15, 55), (10, 50), (128, 128, 130)), ("pants", (55, 75), (10, 50), (245, 245, 245)),
               ("shoes", (75, 78), (10, 20), (200, 20, 30))]
    for name, (top, bottom), (left, right), colour in regions:
        class_map[top:bottom, left:right] = index(name)
        photo[top:bottom, left:right] = colour
    photo[15:55, 30:50] = (64, 64, 65)  # the coat's shadowed half
    return class_map, Image.fromarray(photo)


def test_garments_are_listed_largest_first_with_shares_of_the_person_and_colours():
    class_map, photo = dressed_person()
    garments = describe_class_map(class_map, photo, GROUPS)
    person = 100 + 200 + 1600 + 800 + 30
    assert [(garment.name, garment.group, garment.colour) for garment in garments] == [
        ("coat", "outerwear", "grey"), ("pants", "bottoms", "white"), ("shoes", "footwear", "red")]
    assert [garment.share for garment in garments] == pytest.approx([1600 / person, 800 / person, 30 / person],
                                                                    abs=1e-5)
    assert garments[1].rgb == (245, 245, 245)
    description = PhotoDescription("0004.jpg", "photos/0004.jpg", "label", garments)
    assert description.text() == "grey coat, white pants, red shoes"


def test_a_minimum_share_drops_small_regions_as_noise():
    class_map, photo = dressed_person()
    kept = describe_class_map(class_map, photo, GROUPS, minimum_share=0.02)
    assert [garment.name for garment in kept] == ["coat", "pants"]  # the shoes are 1.1 % of the person


def test_a_photo_without_a_person_has_no_garments():
    photo = Image.new("RGB", (8, 6), (10, 200, 10))
    description = PhotoDescription("empty.jpg", "empty.jpg", "prediction",
                                   describe_class_map(np.zeros((6, 8), dtype=np.uint8), photo, GROUPS))
    assert description.garments == () and description.text() == "no garments found"


def test_the_class_map_must_be_the_photos_size():
    with pytest.raises(ValueError, match=r"class map of shape \(6, 8\) for a photo of 9x6"):
        describe_class_map(np.zeros((6, 8), dtype=np.uint8), Image.new("RGB", (9, 6)), GROUPS)


def test_labels_of_both_layouts_describe_every_garment_present(ccp_synthetic, kaggle_synthetic):
    for photo in (ccp_synthetic / "photos" / "0002.jpg", kaggle_synthetic / "images" / "0002.jpg"):
        described = describe_photo(photo, LabelSource())
        present = [CLASS_NAMES[value] for value in np.unique(described.class_map)]
        garments = [name for name in present if GROUPS.group_of_class[index(name)] not in ("background", "skin",
                                                                                         "hair")]
        assert sorted(garment.name for garment in described.description.garments) == sorted(garments)
        assert described.description.source == "label" and described.image.size == (28, 40)


def test_a_photo_without_a_label_is_refused_with_the_fix(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "holiday.jpg")
    with pytest.raises(ClothVisionError, match="photo .*holiday.jpg has no ground-truth label: .*leave out "
                                               "--use-labels"):
        describe_photo(tmp_path / "holiday.jpg", LabelSource())


def test_descriptions_round_trip_through_json_lines(tmp_path):
    descriptions = [PhotoDescription("a.jpg", "x/a.jpg", "prediction",
                                     (Garment("coat", "outerwear", "grey", (70, 79, 95), 0.31),),
                                     "results/unet.pt", "0f" * 32),
                    PhotoDescription("b.jpg", "x/b.jpg", "label", (), "labels")]
    path = write_descriptions(tmp_path / "descriptions.jsonl", descriptions)
    first = json.loads(path.read_text().splitlines()[0])
    assert first == {"image": "a.jpg", "path": "x/a.jpg", "source": "prediction", "checkpoint": "results/unet.pt",
                     "checkpoint_sha256": "0f" * 32, "garments": [
        {"name": "coat", "group": "outerwear", "colour": "grey", "rgb": [70, 79, 95], "share": 0.31}]}
    assert read_descriptions(path) == descriptions


@pytest.mark.parametrize(("text", "fragment"), [
    ('{"image": "a.jpg"}\n', "line 1 is not a photo description (KeyError"),
    ("\n\nnot json\n", "line 3 is not a photo description (JSONDecodeError"),
    ("", "holds no description"),
])
def test_files_that_are_not_descriptions_are_refused(tmp_path, text, fragment):
    (tmp_path / "descriptions.jsonl").write_text(text)
    with pytest.raises(ClothVisionError, match=re.escape(fragment) + ".*: pass a file written by img_test.py "
                                               "--describe --json FILE"):
        read_descriptions(tmp_path / "descriptions.jsonl")
