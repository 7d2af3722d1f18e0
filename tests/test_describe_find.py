"""img_test.py --describe and --find: descriptions of dataset photos and predictions, JSON Lines reused by
searches, figures, and one error line for every bad input."""

import json

import numpy as np
import pytest
from checkpoint_factory import write_tiny_checkpoint
from PIL import Image
from test_img_test_errors import assert_one_error_line
from training_runs import single_torch_thread  # noqa: F401 (autouse fixture: tests run on one thread)

import img_test
from helpers.errors import run_cli
from inference.attire import LabelSource, describe_photo

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CONSTANT_CLASS = 7  # 'boots' in the CCP class list
HAT_CLASS = 20


@pytest.fixture(scope="module")
def boots_checkpoint(tmp_path_factory):
    """A tiny U-net that predicts boots on every pixel."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp("checkpoints") / "boots.pt", constant_class=CONSTANT_CLASS)


def printed_lines(capsys) -> list[str]:
    return capsys.readouterr().out.strip().splitlines()


def test_describe_prints_one_line_per_dataset_photo_from_its_label(ccp_synthetic, tmp_path, capsys):
    json_file = tmp_path / "descriptions.jsonl"
    assert run_cli(img_test.main, [str(ccp_synthetic / "photos"), "--describe", "--use-labels",
                                   "--json", str(json_file)]) == 0
    lines = printed_lines(capsys)
    photos = sorted((ccp_synthetic / "photos").iterdir())
    expected = [describe_photo(photo, LabelSource()).description for photo in photos]
    assert lines == [f"{item.image}: {item.text()}" for item in expected] + [
        f"Wrote 6 descriptions to {json_file}"]
    records = [json.loads(line) for line in json_file.read_text().splitlines()]
    assert [record["image"] for record in records] == [photo.name for photo in photos]
    assert {record["source"] for record in records} == {"label"}
    first = records[0]["garments"]
    assert [garment["share"] for garment in first] == sorted((garment["share"] for garment in first), reverse=True)
    assert set(first[0]) == {"name", "group", "colour", "rgb", "share"}


def test_describe_a_prediction_names_the_predicted_garment_in_the_photos_colour(boots_checkpoint, tmp_path, capsys):
    folder = tmp_path / "street"
    folder.mkdir()
    Image.new("RGB", (50, 70), (200, 25, 35)).save(folder / "red.png")
    Image.new("RGB", (50, 70), (245, 245, 245)).save(folder / "white.png")
    (folder / "notes.txt").write_text("not a photo")
    assert run_cli(img_test.main, [str(folder), "--describe", "--checkpoint", str(boots_checkpoint)]) == 0
    assert printed_lines(capsys) == ["red.png: red boots", "white.png: white boots",
                                     "Skipped 1 files that are not readable images: notes.txt (not an image)"]


def boots_and_a_speck_of_hat(image: Image.Image) -> np.ndarray:
    """Boots everywhere but 0.5 % of hat: a garment that --min-share 0 keeps and the default share drops."""
    class_map = np.full((image.height, image.width), CONSTANT_CLASS, dtype=np.uint8)
    class_map[:5, :10] = HAT_CLASS
    return class_map


@pytest.mark.parametrize("minimum_share, expected", [([], "white boots"),
                                                     (["--min-share", "0"], "white boots, white hat")])
def test_min_share_reaches_the_figure_the_out_dir_and_describe(minimum_share, expected, boots_checkpoint,
                                                               tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(img_test.SegmentationPredictor, "predict", lambda self, image: boots_and_a_speck_of_hat(image))
    photo = tmp_path / "white.png"
    Image.new("RGB", (100, 100), (245, 245, 245)).save(photo)
    common = [str(photo), "--checkpoint", str(boots_checkpoint), *minimum_share]
    assert run_cli(img_test.main, [*common, "--describe"]) == 0
    assert printed_lines(capsys) == [f"white.png: {expected}"]
    assert run_cli(img_test.main, [*common, "--save", str(tmp_path / "figure.png")]) == 0
    assert f"Description: {expected}" in printed_lines(capsys)
    assert run_cli(img_test.main, [*common, "--out-dir", str(tmp_path / "out")]) == 0
    record = json.loads((tmp_path / "out" / "descriptions.jsonl").read_text())
    assert ", ".join(f"{garment['colour']} {garment['name']}" for garment in record["garments"]) == expected
    img_test.test_with_image(photo, boots_checkpoint, show=False, min_share=0.0 if minimum_share else 0.01)
    assert f"Description: {expected}" in printed_lines(capsys)


def test_find_ranks_a_descriptions_file_without_rerunning_anything(ccp_synthetic, tmp_path, capsys):
    json_file = tmp_path / "descriptions.jsonl"
    run_cli(img_test.main, [str(ccp_synthetic / "photos"), "--describe", "--use-labels", "--json", str(json_file)])
    capsys.readouterr()
    target = json.loads(json_file.read_text().splitlines()[3])
    query = ", ".join(f"{garment['colour']} {garment['name']}" for garment in target["garments"][:2])
    sheet = tmp_path / "sheet.png"
    assert run_cli(img_test.main, [str(json_file), "--find", query, "--top", "2", "--save", str(sheet),
                                   "--checkpoint", str(tmp_path / "no-model-needed.pt")]) == 0
    lines = printed_lines(capsys)
    assert lines[0] == f'The 2 best of 6 photos for "{query}":'
    assert lines[1].startswith(f"  1. {target['image']}  1.00  ")
    assert len(lines) == 4 and lines[3] == f"Saved the contact sheet to {sheet}"
    assert sheet.read_bytes()[:8] == PNG_SIGNATURE


def test_find_says_when_no_photo_matches_and_names_the_nearest_garments(ccp_synthetic, tmp_path, capsys):
    json_file = tmp_path / "descriptions.jsonl"
    run_cli(img_test.main, [str(ccp_synthetic / "photos"), "--describe", "--use-labels", "--json", str(json_file)])
    capsys.readouterr()
    records = [json.loads(line) for line in json_file.read_text().splitlines()]
    barefoot = [record for record in records if all(garment["group"] != "footwear" for garment in record["garments"])]
    assert 0 < len(barefoot) < len(records)
    json_file.write_text("".join(json.dumps(record) + "\n" for record in barefoot))
    sheet = tmp_path / "sheet.png"
    assert run_cli(img_test.main, [str(json_file), "--find", "boots", "--save", str(sheet)]) == 0
    [line] = printed_lines(capsys)
    prefix = f"No photo of the {len(barefoot)} matches \"boots\": for 'boots' the nearest they show: "
    suffix = "; no contact sheet drawn"
    assert line.startswith(prefix) and line.endswith(suffix)
    shown = {f"'{garment['colour']} {garment['name']}'" for record in barefoot for garment in record["garments"]}
    offered = line[len(prefix):-len(suffix)].split(", ")
    assert len(offered) == 3 and set(offered) <= shown
    assert not sheet.exists()


def test_find_describes_a_folder_once_and_writes_the_descriptions(ccp_synthetic, tmp_path, capsys):
    json_file = tmp_path / "descriptions.jsonl"
    assert run_cli(img_test.main, [str(ccp_synthetic / "photos"), "--find", "footwear", "--use-labels",
                                   "--json", str(json_file), "--top", "20"]) == 0
    lines = printed_lines(capsys)
    assert lines[0] == f"Wrote 6 descriptions to {json_file}"
    assert lines[1] == 'The 6 best of 6 photos for "footwear":'
    scores = [float(line.split()[2]) for line in lines[2:]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 6


def test_describe_save_draws_the_photo_its_overlay_and_its_garments(ccp_synthetic, tmp_path, capsys):
    figure = tmp_path / "described.png"
    photo = ccp_synthetic / "photos" / "0002.jpg"
    assert run_cli(img_test.main, [str(photo), "--describe", "--use-labels", "--save", str(figure)]) == 0
    assert printed_lines(capsys)[-1] == f"Saved the figure to {figure}"
    with Image.open(figure) as image:
        assert image.mode == "RGB" and image.width > 400


def test_the_prediction_figure_and_output_carry_the_description(boots_checkpoint, tmp_path, capsys):
    Image.new("RGB", (30, 40), (200, 25, 35)).save(tmp_path / "red.png")
    img_test.test_with_image(tmp_path / "red.png", boots_checkpoint, show=False, save_to=tmp_path / "figure.png")
    assert "Description: red boots" in capsys.readouterr().out.splitlines()
    out_dir = tmp_path / "predictions"
    assert run_cli(img_test.main, [str(tmp_path / "red.png"), "--out-dir", str(out_dir),
                                   "--checkpoint", str(boots_checkpoint)]) == 0
    [record] = [json.loads(line) for line in (out_dir / "descriptions.jsonl").read_text().splitlines()]
    assert (record["image"], record["source"], record["garments"][0]["name"]) == ("red.png", "prediction", "boots")
    assert record["garments"][0]["share"] == 1.0 and record["garments"][0]["colour"] == "red"


@pytest.fixture(scope="module")
def places(tmp_path_factory, ccp_synthetic_module):
    folder = tmp_path_factory.mktemp("describe-errors")
    (folder / "empty").mkdir()
    (folder / "no-images").mkdir()
    (folder / "no-images" / "readme.txt").write_text("nothing to see")
    (folder / "holiday").mkdir()
    Image.fromarray(np.zeros((8, 6, 3), dtype=np.uint8)).save(folder / "holiday" / "beach.jpg")
    (folder / "broken.jsonl").write_text('{"image": "a.jpg"}\n')
    return {"tmp": folder, "photos": ccp_synthetic_module / "photos"}


@pytest.fixture(scope="module")
def ccp_synthetic_module(tmp_path_factory):
    from synthetic_ccp import write_ccp_layout

    return write_ccp_layout(tmp_path_factory.mktemp("ccp"))


ERROR_CASES = {
    "unknown colour": (["{photos}", "--find", "crimson coat", "--use-labels"],
                       "'crimson' is not a colour word; write an optional colour (black, grey, white"),
    "unknown garment": (["{photos}", "--find", "red cloak", "--use-labels"], "'cloak' is not a garment"),
    "empty folder": (["{tmp}/empty", "--describe", "--use-labels"], "holds no files"),
    "folder without images": (["{tmp}/no-images", "--describe", "--use-labels"],
                              "holds no readable image (1 files skipped, e.g. readme.txt: not an image)"),
    "labels of photos that have none": (["{tmp}/holiday", "--describe", "--use-labels"],
                                        "beach.jpg has no ground-truth label"),
    "labels without describing": (["{photos}/0001.jpg", "--use-labels"], "--use-labels and --json go with"),
    "describe and find": (["{photos}", "--describe", "--find", "coat"], "--describe and --find are two commands"),
    "no photo to show": (["{photos}", "--find", "coat", "--use-labels", "--top", "0"], "--top 0"),
    "minimum share": (["{photos}", "--describe", "--min-share", "1.5"], "--min-share 1.5"),
    "figure of a folder": (["{photos}", "--describe", "--use-labels", "--save", "{tmp}/x.png"],
                           "is a folder, and --save draws the figure of one photo"),
    "not a descriptions file": (["{tmp}/broken.jsonl", "--find", "coat"], "line 1 is not a photo description"),
    "missing model": (["{photos}", "--describe", "--checkpoint", "{tmp}/none.pt"], "none.pt not found"),
}


@pytest.mark.parametrize("case", ERROR_CASES)
def test_bad_input_gives_one_error_line(case, places, capsys):
    template, fragment = ERROR_CASES[case]
    assert run_cli(img_test.main, [argument.format(**places) for argument in template]) == 2
    assert_one_error_line(capsys.readouterr().err, fragment)
