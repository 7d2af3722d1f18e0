"""The garment group table: every class of both layouts' class lists in exactly one group, group metrics
summed from the class confusion matrix."""

import json

import pytest
import torch
from synthetic_ccp import CLASS_NAMES

from evaluation.garment_groups import garment_groups_for, read_group_table
from helpers.dataset_layouts import KAGGLE_LAYOUT, ORIGINAL_LAYOUT
from helpers.errors import ClothVisionError
from label_encoder import LabelEncoder
from trainers.metrics import group_metrics, metrics_from_confusion


def test_both_real_class_lists_fall_into_the_groups_one_class_each(real_ccp_dir, kaggle_sample_dir):
    original = LabelEncoder.from_class_file(real_ccp_dir / ORIGINAL_LAYOUT.class_file).class_names
    kaggle = LabelEncoder.from_class_file(kaggle_sample_dir / KAGGLE_LAYOUT.class_file).class_names
    assert (original[0], kaggle[0], len(original), len(kaggle)) == ("null", "none", 59, 59)
    for class_names in (original, kaggle):
        groups = garment_groups_for(class_names)
        mapping = groups.mapping()
        listed = [name for names in mapping.values() for name in names]
        assert sorted(listed) == sorted(class_names)  # each class once, none left out
        assert groups.group_names == [group.name for group in read_group_table()]
        assert mapping["background"] == [class_names[0]]
        not_garments = [name for name, is_garment in zip(class_names, groups.garment_classes, strict=True)
                        if not is_garment]
        assert not_garments == [class_names[0], "hair", "skin"]


def test_groups_gather_the_kinds_a_person_names():
    mapping = garment_groups_for(CLASS_NAMES).mapping()
    assert {"coat", "jacket", "blazer", "cape"} <= set(mapping["outerwear"])
    assert {"shirt", "blouse", "t-shirt", "sweater"} <= set(mapping["tops"])
    assert {"pants", "jeans", "shorts", "skirt"} <= set(mapping["bottoms"])
    assert {"shoes", "boots", "heels", "sneakers"} <= set(mapping["footwear"])
    assert mapping["dresses"] == ["dress", "jumper", "romper"]
    assert 9 <= len(mapping) <= 12


def test_a_class_the_table_does_not_know_is_named():
    with pytest.raises(ClothVisionError, match=r"class 'kilt' has no garment group in .*garment_groups\.json "
                                               r"\(nor 'toga'\): add it to one of the groups background, skin"):
        garment_groups_for(["null", "kilt", "shirt", "toga"])


def test_a_table_that_lists_a_class_twice_is_refused(tmp_path):
    table = {"groups": [{"name": "tops", "garment": True, "description": "", "classes": ["shirt"]},
                        {"name": "outerwear", "garment": True, "description": "", "classes": ["coat", "shirt"]}]}
    path = tmp_path / "groups.json"
    path.write_text(json.dumps(table))
    with pytest.raises(ClothVisionError, match="puts class 'shirt' in both 'tops' and 'outerwear': keep it in one"):
        read_group_table(path)
    path.write_text("{not json")
    with pytest.raises(ClothVisionError, match=r"cannot be read \(JSONDecodeError"):
        read_group_table(path)


def test_group_metrics_sum_the_class_matrix_by_group():
    class_names = ["null", "shirt", "blouse", "skin", "shoes"]
    # Rows are true classes: shirt and blouse are confused with each other (both tops), one shirt pixel is
    # taken for a shoe, one skin pixel for the background; no pixel is truly a shoe.
    matrix = [[10, 0, 0, 0, 0],
              [0, 3, 2, 0, 1],
              [0, 1, 4, 0, 0],
              [1, 0, 0, 5, 0],
              [0, 0, 0, 0, 0]]
    metrics = group_metrics(matrix, garment_groups_for(class_names))
    assert metrics["mapping"] == {"background": ["null"], "skin": ["skin"], "tops": ["shirt", "blouse"],
                                  "footwear": ["shoes"]}
    # By group (background, skin, tops, footwear): [[10,0,0,0], [1,5,0,0], [0,0,10,1], [0,0,0,0]].
    assert metrics["pixel_accuracy"] == pytest.approx(25 / 27)
    assert metrics["per_group_iou"] == pytest.approx({"background": 10 / 11, "skin": 5 / 6, "tops": 10 / 11,
                                                      "footwear": None})
    assert metrics["miou"] == pytest.approx((10 / 11 + 5 / 6 + 10 / 11) / 3)
    assert metrics_from_confusion(matrix)["pixel_accuracy"] == pytest.approx(22 / 27)
    assert group_metrics(torch.tensor(matrix), garment_groups_for(class_names)) == metrics
    with pytest.raises(ValueError, match="5 class names for a 2-class"):
        group_metrics([[1, 0], [0, 1]], garment_groups_for(class_names))
