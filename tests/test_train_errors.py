"""Every bad input to train.py ends with one "error:" line naming the problem, and exit code 2."""

import json
import shutil
import subprocess
import urllib.error

import numpy as np
import pytest
import torch
from training_runs import (
    TINY_RUN_FLAGS,
    build_cache,
    run_train,
    script_environment,
    single_torch_thread,  # noqa: F401 (autouse fixture: tests run on one thread)
    train_script_command,
)

from helpers.checkpoint import load_checkpoint, save_checkpoint
from helpers.errors import run_cli
from models import get_model
from train import main
from trainers.command_line import get_args_parser


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A cache and a one-epoch U-net run on it, to resume from."""
    root = tmp_path_factory.mktemp("trained")
    cache_dir = build_cache(root)
    run_train(model="unet", data=cache_dir, out=root / "results", epochs=1)
    return cache_dir, root / "results"


def only_error_line(capsys) -> str:
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: "), errors
    return errors[0]


def fails_with(arguments: list[str], capsys, *fragments: str) -> None:
    assert run_cli(main, [*TINY_RUN_FLAGS, "--epochs", "1", *arguments]) == 2
    line = only_error_line(capsys)
    for fragment in fragments:
        assert fragment in line


def test_missing_cache_says_to_run_preprocess(tmp_path, capsys):
    fails_with(["--data", str(tmp_path / "absent")], capsys, str(tmp_path / "absent"), "preprocess.py")


def test_cache_of_another_format_version(trained, tmp_path, capsys):
    cache_dir = shutil.copytree(trained[0], tmp_path / "old_cache")
    meta = json.loads((cache_dir / "meta.json").read_text())
    (cache_dir / "meta.json").write_text(json.dumps({**meta, "format_version": 99}))
    fails_with(["--data", str(cache_dir)], capsys, "format version 99", "preprocess.py")


def test_a_class_without_garment_group_stops_the_run_before_training(trained, tmp_path, capsys):
    cache_dir = shutil.copytree(trained[0], tmp_path / "renamed")
    meta = json.loads((cache_dir / "meta.json").read_text())
    meta["class_names"][5] = "kilt"
    (cache_dir / "meta.json").write_text(json.dumps(meta))
    fails_with(["--data", str(cache_dir), "--out", str(tmp_path / "results")], capsys,
               "class 'kilt' has no garment group", "garment_groups.json", "add it to one of the groups")
    assert not (tmp_path / "results" / "unet_last.pt").exists()


@pytest.mark.parametrize(
    ("arguments", "fragments"),
    [
        (["--model", "vgg16"], ("unknown model 'vgg16'", "unet, mobilenetv3, resnet50, resnet101")),
        (["--model", "unet,resnet5"], ("unknown model 'resnet5'",)),
        (["--epochs", "0"], ("--epochs 0",)),
        (["--lr", "-1"], ("--lr -1",)),
        (["--model", "unet,resnet50", "--weights", "w.pt"], ("--weights", "single model")),
        (["--model", "mobilenetv3", "--batch-size", "1"], ("--batch-size 1", "at least 2 images")),
        (["--batch-size", "64"], ("8 train images", "lower --batch-size")),
        (["--time-limit-minutes", "0"], ("--time-limit-minutes 0", "positive")),
        (["--backbone-lr-factor", "0"], ("--backbone-lr-factor 0", "--freeze-backbone-epochs")),
        (["--augment", "full", "--zoom-range", "0.8"], ("--zoom-range 0.8", "at least 1")),
        (["--zoom-range", "1.25"], ("--zoom-range 1.25 applies to --augment full", "add --augment full")),
    ],
)
def test_bad_options(trained, capsys, arguments, fragments):
    fails_with(["--data", str(trained[0]), *arguments], capsys, *fragments)


def test_labels_outside_the_class_range_are_refused_when_the_cache_loads(trained, tmp_path, capsys):
    cache_dir = shutil.copytree(trained[0], tmp_path / "tampered")
    labels = np.load(cache_dir / "labels.npy")
    labels[0, 0, 0] = 200
    np.save(cache_dir / "labels.npy", labels)
    fails_with(["--data", str(cache_dir)], capsys, str(cache_dir / "labels.npy"), "class index 200",
               "59 classes (0-58)", "preprocess.py")


def test_resume_without_a_last_checkpoint(trained, tmp_path, capsys):
    fails_with(
        ["--data", str(trained[0]), "--out", str(tmp_path), "--resume"],
        capsys,
        str(tmp_path / "unet_last.pt"),
        "without --resume",
    )


def test_resume_from_a_checkpoint_of_another_model(trained, tmp_path, capsys):
    cache_dir, results = trained
    shutil.copy(results / "unet_last.pt", tmp_path / "mobilenetv3_last.pt")
    fails_with(
        ["--data", str(cache_dir), "--out", str(tmp_path), "--model", "mobilenetv3", "--resume"],
        capsys,
        "it is a unet checkpoint, not mobilenetv3",
    )


def test_resume_from_a_checkpoint_of_another_class_count(trained, tmp_path, capsys):
    cache_dir, results = trained
    checkpoint = load_checkpoint(results / "unet_last.pt")
    save_checkpoint(tmp_path / "unet_last.pt", {**checkpoint, "class_names": checkpoint["class_names"][:58]})
    fails_with(
        ["--data", str(cache_dir), "--out", str(tmp_path), "--resume"],
        capsys,
        "it has 58 classes, this cache has 59",
    )


def test_resume_with_another_unet_width(trained, capsys):
    cache_dir, results = trained
    fails_with(
        ["--data", str(cache_dir), "--out", str(results), "--resume", "--unet-base-width", "8"],
        capsys,
        "{'base_width': 4}",
        "{'base_width': 8}",
    )


def test_missing_weights_file(trained, tmp_path, capsys):
    fails_with(
        ["--data", str(trained[0]), "--weights", str(tmp_path / "absent.pt")],
        capsys,
        str(tmp_path / "absent.pt"),
        "not found",
    )


def test_weights_of_another_model(trained, tmp_path, capsys):
    torch.save(get_model("unet", 59, base_width=8).state_dict(), tmp_path / "wide_unet.pt")
    fails_with(
        ["--data", str(trained[0]), "--weights", str(tmp_path / "wide_unet.pt")],
        capsys,
        str(tmp_path / "wide_unet.pt"),
        "does not match",
        "wrong shapes",
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_cuda_asked_for_but_absent(trained, capsys):
    assert run_cli(main, ["--data", str(trained[0]), "--device", "cuda"]) == 2
    assert "CUDA is not available" in only_error_line(capsys)


def test_the_script_itself_prints_one_line_and_exits_2(tmp_path):
    result = subprocess.run(
        train_script_command("--data", str(tmp_path / "absent")),
        env=script_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: no cache at {tmp_path / 'absent'}: run `python preprocess.py` first"
    ]


def test_every_flag_has_help_with_its_default():
    for action in get_args_parser()._actions:
        if action.dest != "help":
            assert action.help and "default" in action.help, action.option_strings


def test_a_missing_download_of_any_model_fails_before_the_first_epoch(trained, tmp_path, monkeypatch, capsys):
    cache_dir, _ = trained
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))

    def refuse_download(url, *args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse_download)
    arguments = ["--model", "unet,mobilenetv3", "--data", str(cache_dir), "--out", str(tmp_path / "results"),
                 "--epochs", "1", "--unet-base-width", "4", "--pretrained", "imagenet", "--device", "cpu", "--no-show"]
    assert run_cli(main, arguments) == 2
    assert "could not download the ImageNet mobilenetv3 weights" in only_error_line(capsys)
    assert not (tmp_path / "results" / "unet.pt").exists()


@pytest.mark.parametrize("make_out", [lambda tmp: tmp / "file.txt", lambda tmp: tmp / "file.txt" / "results"])
def test_an_output_folder_that_cannot_be_used_fails_before_training(trained, tmp_path, capsys, make_out):
    cache_dir, _ = trained
    (tmp_path / "file.txt").write_text("not a folder")
    out = make_out(tmp_path)
    assert run_cli(main, [*TINY_RUN_FLAGS, "--data", str(cache_dir), "--out", str(out), "--epochs", "1"]) == 2
    line = only_error_line(capsys)
    assert line.startswith("error: --out ") and str(out) in line
    assert "epoch" not in capsys.readouterr().out
