"""`python train.py --evaluate CHECKPOINT`: the test report of a saved checkpoint, with intervals, as JSON."""

import functools
import io
import json

import pytest
from training_runs import (
    build_cache,
    run_train,
    single_torch_thread,  # noqa: F401 (autouse fixture: tests run on one thread)
)

from helpers.errors import run_cli
from train import main
from trainers import evaluate_command, scoring
from trainers.report import read_image_confusion


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate_command")
    cache_dir = build_cache(root)
    run_train(model="unet", data=cache_dir, out=root / "results", epochs=1, precision="fp32")
    return cache_dir, root / "results"


def test_evaluate_writes_the_report_train_wrote_and_prints_it(trained, tmp_path, capsys):
    cache_dir, results = trained
    out = tmp_path / "unet_eval.json"
    assert run_cli(main, ["--evaluate", str(results / "unet.pt"), "--data", str(cache_dir), "--precision", "fp32",
                          "--device", "cpu", "--out", str(out)]) == 0
    written, trained_report = json.loads(out.read_text()), json.loads((results / "unet_test.json").read_text())
    assert set(written) <= set(trained_report)
    for key in ("pixel_accuracy", "miou", "confusion_matrix", "intervals", "at_training_size", "resolution"):
        assert written[key] == trained_report[key], key
    ids, matrices = read_image_confusion(out)
    assert len(ids) == written["num_images"] and matrices.sum() == sum(map(sum, written["confusion_matrix"]))
    printed = capsys.readouterr().out
    assert "unet test (" in printed and "at the annotations' own size, TTA none" in printed
    assert f"wrote {out}" in printed and "garment-group IoU: background " in printed


def test_evaluate_with_flip_tta_and_the_val_split_names_them_in_its_default_report(trained, capsys):
    cache_dir, results = trained
    assert run_cli(main, ["--evaluate", str(results / "unet.pt"), "--data", str(cache_dir), "--split", "val",
                          "--tta", "flip", "--device", "cpu"]) == 0
    report = json.loads((results / "unet_evaluate_val_tta-flip.json").read_text())
    assert (report["split"], report["tta"]) == ("val", "flip")


@pytest.mark.parametrize(("arguments", "message"), [
    (["--epochs", "3"], "--evaluate scores a checkpoint and trains nothing: --epochs do not apply"),
    (["--out", "{results}"], "with --evaluate, --out names the report's .json file"),
])
def test_evaluate_refuses_training_flags_and_a_folder_as_out(trained, capsys, arguments, message):
    cache_dir, results = trained
    arguments = [argument.format(results=results) for argument in arguments]
    assert run_cli(main, ["--evaluate", str(results / "unet.pt"), "--data", str(cache_dir), *arguments]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and message in errors[0]


class Terminal(io.StringIO):
    """Where tqdm draws its bar as on a terminal (it hides the bar from files and pipes)."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("flags", "bar_shown"), [([], True), (["--no-progress"], False)])
def test_evaluate_shows_a_progress_bar_over_the_batches_unless_no_progress(trained, tmp_path, monkeypatch, flags,
                                                                           bar_shown):
    cache_dir, results = trained
    terminal = Terminal()
    monkeypatch.setattr(scoring, "tqdm", functools.partial(scoring.tqdm, file=terminal))
    assert run_cli(main, ["--evaluate", str(results / "unet.pt"), "--data", str(cache_dir), "--device", "cpu",
                          "--batch-size", "1", "--out", str(tmp_path / "report.json"), *flags]) == 0
    test_images = json.loads((tmp_path / "report.json").read_text())["num_images"]
    assert test_images > 1
    # The bar is drawn when it starts, with one step per batch of one image.
    assert ("unet test:   0%" in terminal.getvalue() and f" 0/{test_images} " in terminal.getvalue()) == bar_shown


def test_evaluate_refuses_an_unwritable_out_before_scoring_anything(trained, tmp_path, monkeypatch, capsys):
    cache_dir, results = trained

    def scored(*arguments, **keywords):
        raise AssertionError("the checkpoint was scored before --out was checked")

    monkeypatch.setattr(evaluate_command, "evaluate_checkpoint", scored)
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("a file, not a folder")
    out = not_a_folder / "report.json"
    assert run_cli(main, ["--evaluate", str(results / "unet.pt"), "--data", str(cache_dir),
                          "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --out {out}: {not_a_folder} is a file, not a folder, so nothing can be written under it: "
        "choose a path in a folder"]


def test_evaluating_something_that_is_no_checkpoint_is_one_line(trained, tmp_path, capsys):
    cache_dir, _ = trained
    not_a_checkpoint = tmp_path / "notes.pt"
    not_a_checkpoint.write_text("hello")
    assert run_cli(main, ["--evaluate", str(not_a_checkpoint), "--data", str(cache_dir)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and f"checkpoint {not_a_checkpoint} cannot be read" in errors[0]


def test_split_without_evaluate_is_refused(capsys):
    assert run_cli(main, ["--split", "val"]) == 2
    assert "--split chooses the split of --evaluate CHECKPOINT" in capsys.readouterr().err
