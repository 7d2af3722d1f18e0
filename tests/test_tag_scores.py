"""img_test.py --describe --score-tags: garments found against the photos' tags, scored exactly as by hand."""

import json

import numpy as np
import pytest
import scipy.io
from checkpoint_factory import write_tiny_checkpoint
from synthetic_ccp import CLASS_NAMES, write_ccp_layout

import img_test
from helpers.errors import ClothVisionError, run_cli
from inference.image_tags import garment_group_of_class, photo_tags, read_tag_file
from inference.tag_scores import detection_scores, score_tags, tag_score_table

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SIZE = (40, 28)


def scores(precision, recall, f1, true_positives, found, tagged) -> dict:
    return {"precision": precision, "recall": recall, "f1": f1, "true_positives": true_positives, "found": found,
            "tagged": tagged}


def test_scores_per_class_per_group_and_micro_are_those_computed_by_hand():
    group_of_class = {"shirt": "tops", "blouse": "tops", "jeans": "bottoms", "shoes": "footwear"}
    photos = [({"shirt", "jeans", "skin"}, {"shirt", "shoes", "hair", "null"}),  # skin, hair, null: no garments
              ({"blouse", "shoes"}, {"shirt", "shoes"}),
              (set(), {"jeans"})]
    report = score_tags(photos, group_of_class)
    assert report["photos"] == 3
    # Classes: hits shirt (photo 1) and shoes (2); found 4; tagged 5.
    assert report["micro"] == scores(0.5, 0.4, 0.4444, 2, 4, 5)
    assert report["per_class"] == {"shirt": scores(1.0, 0.5, 0.6667, 1, 1, 2),
                                   "blouse": scores(0.0, None, None, 0, 1, 0),
                                   "jeans": scores(0.0, 0.0, 0.0, 0, 1, 1),
                                   "shoes": scores(1.0, 0.5, 0.6667, 1, 1, 2)}
    # Groups: the blouse found on photo 2 is right as a top; photo 3's bottoms are missed.
    assert report["group_micro"] == scores(0.75, 0.6, 0.6667, 3, 4, 5)
    assert report["per_group"] == {"tops": scores(1.0, 1.0, 1.0, 2, 2, 2), "bottoms": scores(0.0, 0.0, 0.0, 0, 1, 1),
                                   "footwear": scores(1.0, 0.5, 0.6667, 1, 1, 2)}
    table = tag_score_table(report).splitlines()
    assert table[2].split() == ["blouse", "0.000", "-", "-", "1", "0"]
    assert table[5].split() == ["micro,", "classes", "0.500", "0.400", "0.444", "4", "5"]
    assert len(table) == 1 + 4 + 1 + 3 + 1


def test_nothing_found_and_nothing_tagged_have_no_scores():
    assert detection_scores(0, 0, 0) == scores(None, None, None, 0, 0, 0)


def test_the_garment_classes_are_those_of_the_group_table_without_background_skin_and_hair():
    group_of_class = garment_group_of_class()
    assert set(group_of_class) == set(CLASS_NAMES) - {"null", "skin", "hair"}
    assert group_of_class["heels"] == "footwear" and group_of_class["blouse"] == "tops"


def with_labels_and_tags(root, labels: dict[str, set[str]], tags: dict[str, list[str]]):
    """A synthetic original-layout folder: photos with pixel-level labels holding exactly the classes given
    (one stripe each), and photos with image-level tags only."""
    write_ccp_layout(root, count=len(labels) + len(tags), size=SIZE)
    (root / "annotations" / "image-level").mkdir()
    for image_id, classes in labels.items():
        label = np.zeros(SIZE, dtype=np.uint8)
        for stripe, name in enumerate(sorted(classes)):
            label[:, 2 * stripe:2 * stripe + 2] = CLASS_NAMES.index(name)
        scipy.io.savemat(root / "annotations" / "pixel-level" / f"{image_id}.mat", {"groundtruth": label})
    for image_id, names in tags.items():
        (root / "annotations" / "pixel-level" / f"{image_id}.mat").unlink()
        indices = np.array([[CLASS_NAMES.index(name) for name in names]], dtype=np.uint8)
        scipy.io.savemat(root / "annotations" / "image-level" / f"{image_id}.mat", {"tags": indices})
    return root


LABELLED = {"0001": {"null", "skirt", "belt"}, "0002": {"null", "pants"}}
TAGGED = {"0003": ["null", "skin", "hair", "skirt", "heels"], "0004": ["null", "blouse"]}


@pytest.fixture
def dataset(tmp_path):
    return with_labels_and_tags(tmp_path / "ccp", LABELLED, TAGGED)


def test_photo_tags_come_from_image_level_files_else_from_labels(dataset):
    assert photo_tags(dataset / "photos" / "0001.jpg") == {"null", "skirt", "belt"}
    assert photo_tags(dataset / "photos" / "0003.jpg") == {"null", "skin", "hair", "skirt", "heels"}
    (dataset / "annotations" / "pixel-level" / "0002.mat").unlink()
    with pytest.raises(ClothVisionError, match="0002.jpg has neither image-level tags .* nor a pixel-level label"):
        photo_tags(dataset / "photos" / "0002.jpg")


def test_describe_score_tags_scores_a_models_garments_against_tags_and_labels(dataset, tmp_path, capsys):
    # Predicts a skirt on every pixel: found = {skirt} on every photo.
    checkpoint = write_tiny_checkpoint(tmp_path / "skirt.pt", constant_class=CLASS_NAMES.index("skirt"))
    report_file = tmp_path / "report" / "tags.json"
    report_file.parent.mkdir()
    assert run_cli(img_test.main, [str(dataset / "photos"), "--describe", "--checkpoint", str(checkpoint),
                                   "--score-tags", "--tag-report", str(report_file)]) == 0
    report = json.loads(report_file.read_text())
    assert report["photos"] == 4
    # Hits: skirt on 0001 and 0003; found 4 skirts; tagged skirt, belt, pants, skirt, heels, blouse.
    assert report["micro"] == scores(0.5, 0.3333, 0.4, 2, 4, 6)
    missed = scores(None, 0.0, None, 0, 0, 1)
    assert report["per_class"] == {"blouse": missed, "pants": missed, "skirt": scores(0.5, 1.0, 0.6667, 2, 4, 2),
                                   "heels": missed, "belt": missed}
    # As bottoms, the skirt is right on 0001, 0002 (pants) and 0003, wrong on 0004.
    assert report["group_micro"] == scores(0.75, 0.5, 0.6, 3, 4, 6)
    assert report["per_group"] == {"tops": missed, "bottoms": scores(0.75, 1.0, 0.8571, 3, 4, 3), "footwear": missed,
                                   "accessories": missed}
    assert report["measured"] == {"source": "prediction", "min_share": 0.01, "checkpoint": str(checkpoint),
                                  "tta": "none"}
    assert list(report_file.parent.iterdir()) == [report_file]  # written atomically, nothing left beside it
    output = capsys.readouterr().out
    assert "against the tags of 4 photos" in output and f"Wrote the tag scores to {report_file}" in output
    assert ["micro,", "groups", "0.750", "0.500", "0.600", "4", "6"] in [line.split() for line in output.splitlines()]


def test_labels_described_against_their_own_classes_score_one(dataset, capsys):
    for image_id in TAGGED:
        (dataset / "photos" / f"{image_id}.jpg").unlink()
    assert run_cli(img_test.main, [str(dataset / "photos"), "--describe", "--use-labels", "--score-tags"]) == 0
    rows = {line.rsplit(maxsplit=5)[0]: line.split()[-5:] for line in capsys.readouterr().out.splitlines()
            if line.startswith("micro")}
    assert rows == {"micro, classes": ["1.000", "1.000", "1.000", "3", "3"],
                    "micro, groups": ["1.000", "1.000", "1.000", "3", "3"]}


@pytest.mark.parametrize("case", ["not a .mat file", "no tags variable", "index out of range", "fractional"])
def test_a_bad_tag_file_is_one_error_line_naming_it(case, dataset, tmp_path, capsys):
    tag_file = dataset / "annotations" / "image-level" / "0004.mat"
    if case == "not a .mat file":
        tag_file.write_bytes(b"not MATLAB")
    else:
        contents = {"no tags variable": {"labels": np.array([[1, 2]])},
                    "index out of range": {"tags": np.array([[0, 99]])},
                    "fractional": {"tags": np.array([[0.5, 2.0]])}}[case]
        scipy.io.savemat(tag_file, contents)
    checkpoint = write_tiny_checkpoint(tmp_path / "unet.pt")
    assert run_cli(img_test.main, [str(dataset / "photos"), "--describe", "--checkpoint", str(checkpoint),
                                   "--score-tags"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines()
             if line.strip() and not line.startswith("Describing")]  # tqdm's progress lines
    assert len(lines) == 1 and lines[0].startswith(f"error: {tag_file}: ") and "replace it with" in lines[0]


def test_read_tag_file_names_the_file_and_the_problem(dataset):
    tag_file = dataset / "annotations" / "image-level" / "0004.mat"
    scipy.io.savemat(tag_file, {"tags": np.array([[0, 99]])})
    with pytest.raises(ClothVisionError, match=rf"^{tag_file}: tag 99 is no class index \(the 59 classes are numbered "
                                               r"0-58\): replace it with the dataset's image-level annotation"):
        read_tag_file(tag_file, CLASS_NAMES)


@pytest.mark.parametrize("argv, message", [
    (["--score-tags"], "--score-tags goes with --describe of photos"),
    (["--describe", "--use-labels", "--score-tags", "--save", "figure.png"],
     "--score-tags goes with --describe of photos"),
    (["--describe", "--use-labels", "--tag-report", "tags.json"], "--tag-report goes with --score-tags"),
])
def test_score_tags_flags_that_do_not_go_together_are_refused(argv, message, dataset, capsys):
    assert run_cli(img_test.main, [str(dataset / "photos"), *argv]) == 2
    assert message in capsys.readouterr().err
