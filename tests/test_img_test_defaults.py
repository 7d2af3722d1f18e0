"""img_test.py's defaults agree with train.py's: the checkpoint train.py writes by default is the one it reads
(or else the only one in results/), a machine without a display still gets its figure, and
--test-split-image finds the photo in the dataset its checkpoint's cache was made from."""

import shutil
from pathlib import Path

import pytest
from checkpoint_factory import write_tiny_checkpoint
from PIL import Image
from test_img_test_errors import assert_one_error_line
from training_runs import single_torch_thread  # noqa: F401 (autouse fixture: tests run on one thread)

import img_test
import preprocess
from helpers.errors import run_cli
from trainers.options import TrainingOptions

DEFAULT_RUN = TrainingOptions()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A project folder to run img_test.py in, with one photo and no display."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(img_test, "display_available", lambda: False)
    Image.new("RGB", (30, 40), (200, 30, 30)).save(tmp_path / "photo.jpg")
    (tmp_path / DEFAULT_RUN.out).mkdir()
    return tmp_path


def output_lines(capsys) -> list[str]:
    return capsys.readouterr().out.strip().splitlines()


def test_the_default_checkpoint_is_the_one_train_py_writes_by_default(workspace, capsys):
    default = workspace / DEFAULT_RUN.out / f"{DEFAULT_RUN.model}.pt"
    assert default.name == "unet.pt"
    write_tiny_checkpoint(default)
    write_tiny_checkpoint(workspace / DEFAULT_RUN.out / "mobilenetv3.pt")
    assert run_cli(img_test.main, ["photo.jpg", "--save", "figure.png"]) == 0
    assert not any(line.startswith("Using") for line in output_lines(capsys))
    assert (workspace / "figure.png").read_bytes().startswith(PNG_SIGNATURE)


def test_without_it_the_only_checkpoint_in_results_is_used_and_named(workspace, capsys):
    results = workspace / DEFAULT_RUN.out
    write_tiny_checkpoint(results / "mobilenetv3.pt")
    shutil.copy(results / "mobilenetv3.pt", results / "mobilenetv3_last.pt")  # resume state, not a choice
    assert run_cli(img_test.main, ["photo.jpg", "--save", "figure.png"]) == 0
    lines = output_lines(capsys)
    assert lines[0] == ("Using results/mobilenetv3.pt, the only checkpoint in results/ (--checkpoint FILE chooses "
                        "another)")


@pytest.mark.parametrize(("checkpoints", "fragment"), [
    ((), "checkpoint results/unet.pt not found, and results/ holds no other: train one with `python train.py`"),
    (("a.pt", "b.pt"), "checkpoint results/unet.pt not found, and results/ holds a.pt, b.pt: pass one with "
                       "--checkpoint FILE"),
])
def test_no_single_checkpoint_to_choose_is_one_error_line(checkpoints, fragment, workspace, capsys):
    for name in checkpoints:
        write_tiny_checkpoint(workspace / DEFAULT_RUN.out / name)
    assert run_cli(img_test.main, ["photo.jpg"]) == 2
    assert_one_error_line(capsys.readouterr().err, fragment)


def test_without_a_display_the_figure_is_saved_to_a_default_path_and_said(workspace, capsys):
    write_tiny_checkpoint(workspace / DEFAULT_RUN.out / "unet.pt")
    assert run_cli(img_test.main, ["photo.jpg"]) == 0
    figure = workspace / DEFAULT_RUN.out / "prediction_photo.png"
    assert figure.read_bytes().startswith(PNG_SIGNATURE)
    assert output_lines(capsys)[-1] == (f"No display to show the figure: saved it to {DEFAULT_RUN.out}/"
                                        "prediction_photo.png (--save FILE writes it elsewhere)")


def test_the_default_figure_path_is_checked_before_any_work(workspace, capsys):
    write_tiny_checkpoint(workspace / DEFAULT_RUN.out / "unet.pt")
    (workspace / DEFAULT_RUN.out / "prediction_photo.png").mkdir()
    assert run_cli(img_test.main, ["photo.jpg"]) == 2
    assert_one_error_line(capsys.readouterr().err, "prediction_photo.png is a folder, and a file is written there")


def test_test_split_image_finds_its_photo_in_the_dataset_its_cache_was_made_from(ccp_synthetic, workspace):
    cache = preprocess.preprocess(ccp_synthetic, workspace / "cache", size=(32, 24), workers=1)
    checkpoint = write_tiny_checkpoint(workspace / "model.pt", args={"model": "unet", "data": str(cache)})
    # SPLIT_IDS' test photos 0002 and 0006, found without --data-dir, from the folder the cache records.
    assert img_test.test_split_image(checkpoint, 1) == ccp_synthetic.resolve() / "photos" / "0006.jpg"
    shutil.rmtree(cache)  # without its cache, the default dataset folder: data/
    (workspace / "data" / "photos").mkdir(parents=True)
    Image.new("RGB", (24, 32)).save(workspace / "data" / "photos" / "0002.jpg")
    assert img_test.test_split_image(checkpoint, 0) == Path("data") / "photos" / "0002.jpg"
