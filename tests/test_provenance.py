"""Descriptions record what made them (the checkpoint's path and SHA-256, or labels), and --find --save redraws
each photo with that very checkpoint: by default, or given again, but never another one."""

import hashlib
import json
import shutil

import pytest
from checkpoint_factory import write_tiny_checkpoint
from PIL import Image
from test_img_test_errors import assert_one_error_line
from training_runs import single_torch_thread  # noqa: F401 (autouse fixture: tests run on one thread)

import img_test
from helpers.errors import run_cli

BOOTS, SKIRT = 7, 42  # class indices in the CCP class list


@pytest.fixture
def described(tmp_path, monkeypatch):
    """Two photos described by a model that sees boots everywhere, into descriptions.jsonl; run from a folder
    without results/, so no default checkpoint could stand in for the recorded one."""
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (30, 40), (200, 25, 35)).save(photos / "red.png")
    Image.new("RGB", (30, 40), (245, 245, 245)).save(photos / "white.png")
    boots = write_tiny_checkpoint(tmp_path / "models" / "boots.pt", constant_class=BOOTS)
    descriptions = tmp_path / "descriptions.jsonl"
    assert run_cli(img_test.main, [str(photos), "--describe", "--checkpoint", str(boots),
                                   "--json", str(descriptions)]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return {"tmp": tmp_path, "boots": boots, "descriptions": descriptions}


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_row_records_the_checkpoint_path_and_its_digest(described):
    digest = hashlib.sha256(described["boots"].read_bytes()).hexdigest()
    rows = records(described["descriptions"])
    assert [(row["image"], row["checkpoint"], row["checkpoint_sha256"]) for row in rows] == [
        ("red.png", str(described["boots"]), digest), ("white.png", str(described["boots"]), digest)]


def test_rows_described_from_labels_say_so(ccp_synthetic, tmp_path):
    out_dir = tmp_path / "labels.jsonl"
    assert run_cli(img_test.main, [str(ccp_synthetic / "photos" / "0001.jpg"), "--describe", "--use-labels",
                                   "--json", str(out_dir)]) == 0
    [row] = records(out_dir)
    assert (row["source"], row["checkpoint"], row["checkpoint_sha256"]) == ("label", "labels", None)


def test_out_dir_rows_record_the_checkpoint_too(described, tmp_path):
    out_dir = tmp_path / "predictions"
    assert run_cli(img_test.main, [str(tmp_path / "photos"), "--out-dir", str(out_dir),
                                   "--checkpoint", str(described["boots"])]) == 0
    rows = records(out_dir / "descriptions.jsonl")
    assert {row["checkpoint_sha256"] for row in rows} == {hashlib.sha256(described["boots"].read_bytes()).hexdigest()}


def test_find_save_redraws_with_the_recorded_checkpoint_by_default(described, capsys):
    sheet = described["tmp"] / "sheet.png"
    assert run_cli(img_test.main, [str(described["descriptions"]), "--find", "red boots", "--save", str(sheet)]) == 0
    assert sheet.stat().st_size > 0 and "1. red.png  1.00  red boots" in capsys.readouterr().out


def test_find_save_accepts_the_same_checkpoint_under_another_name(described):
    copy = shutil.copy(described["boots"], described["tmp"] / "copy.pt")
    sheet = described["tmp"] / "sheet.png"
    assert run_cli(img_test.main, [str(described["descriptions"]), "--find", "boots", "--checkpoint", str(copy),
                                   "--save", str(sheet)]) == 0
    assert sheet.is_file()


@pytest.mark.parametrize("how", ["given with --checkpoint", "trained again over the recorded file"])
def test_find_save_refuses_another_checkpoint_in_one_line(how, described, capsys):
    other = write_tiny_checkpoint(described["tmp"] / "skirt.pt", constant_class=SKIRT)
    if how == "given with --checkpoint":
        arguments = ["--checkpoint", str(other)]
    else:
        shutil.copy(other, described["boots"])
        arguments = []
    sheet = described["tmp"] / "sheet.png"
    assert run_cli(img_test.main, [str(described["descriptions"]), "--find", "boots", "--save", str(sheet),
                                   *arguments]) == 2
    recorded = records(described["descriptions"])[0]["checkpoint_sha256"]
    assert_one_error_line(capsys.readouterr().err, f"red.png was described by checkpoint {described['boots']} "
                                                   f"(sha256 {recorded[:12]}), but ")
    assert not sheet.exists()
