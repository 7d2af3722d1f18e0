"""--resume after a kill -9 reaches exactly the result of a run that was never interrupted."""

import json
import signal
import subprocess

import torch
from training_runs import (
    HANG_GUARD_SECONDS,
    PAUSED_TRAINING_SCRIPT,
    LineReader,
    build_cache,
    one_torch_thread,
    run_train,
    script_environment,
    train_script_command,
)

import train as train_script
from helpers.checkpoint import load_checkpoint, state_dict_digest
from helpers.errors import run_cli
from models import deeplabv3
from trainers import ModelTrainer

EPOCHS = 4


def without_timings(history: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key != "seconds"} for row in history]


def kill_paused_before_epoch_two(arguments: list[str], last_checkpoint) -> int:
    """Start a training run that pauses before epoch 2, SIGKILL it there, return its last checkpoint's epoch.

    The run waits at that point until it is killed: it cannot have finished, however slow the machine."""
    process = subprocess.Popen(
        train_script_command(*arguments, script=PAUSED_TRAINING_SCRIPT),
        env={**script_environment(), "PAUSE_BEFORE_EPOCH": "2"},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    LineReader(process.stdout).wait_for("paused before epoch 2")
    process.kill()
    assert process.wait(timeout=HANG_GUARD_SECONDS) == -signal.SIGKILL
    return load_checkpoint(last_checkpoint)["epoch"]


def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path):
    cache_dir = build_cache(tmp_path)
    whole = run_train(model="unet", data=cache_dir, out=tmp_path / "whole", epochs=EPOCHS)["unet"]

    out = tmp_path / "interrupted"
    arguments = ["--model", "unet", "--data", str(cache_dir), "--out", str(out), "--epochs", str(EPOCHS)]
    assert kill_paused_before_epoch_two(arguments, out / "unet_last.pt") == 1
    resumed = run_train(model="unet", data=cache_dir, out=out, epochs=EPOCHS, resume=True)["unet"]

    assert len(resumed["history"]) == EPOCHS
    assert without_timings(resumed["history"]) == without_timings(whole["history"])
    whole_report = json.loads((tmp_path / "whole" / "unet_test.json").read_text())
    resumed_report = json.loads((out / "unet_test.json").read_text())
    assert {**resumed_report, "checkpoint": None} == {**whole_report, "checkpoint": None}
    assert resumed_report["state_dict_digest"] == state_dict_digest(load_checkpoint(out / "unet.pt")["state_dict"])
    for name in ("unet.pt", "unet_last.pt"):
        whole_checkpoint = load_checkpoint(tmp_path / "whole" / name)
        resumed_checkpoint = load_checkpoint(out / name)
        assert resumed_checkpoint["epoch"] == whole_checkpoint["epoch"]
        for key, tensor in whole_checkpoint["state_dict"].items():
            assert torch.equal(resumed_checkpoint["state_dict"][key], tensor), key
    whole_last = load_checkpoint(tmp_path / "whole" / "unet_last.pt")
    resumed_last = load_checkpoint(out / "unet_last.pt")
    assert torch.equal(resumed_last["rng"]["torch"], whole_last["rng"]["torch"])
    assert resumed_last["scheduler"] == whole_last["scheduler"]


def test_resuming_a_finished_run_only_reevaluates_it(tmp_path):
    cache_dir = build_cache(tmp_path)
    first = run_train(model="unet", data=cache_dir, out=tmp_path / "results", epochs=1)["unet"]
    again = run_train(model="unet", data=cache_dir, out=tmp_path / "results", epochs=1, resume=True)["unet"]
    assert again["history"] == first["history"]
    assert again["test"] == first["test"]


def test_resume_takes_the_interrupted_runs_options_unless_given_again(tmp_path, capsys):
    cache_dir = build_cache(tmp_path)
    out = tmp_path / "results"
    run_train(model="unet", data=cache_dir, out=out, epochs=1, seed=7, augment="none", unet_base_width=6)
    with one_torch_thread():
        # Neither the width, the seed nor the augmentation repeated: the checkpoint knows them.
        resumed = train_script.main(["--model", "unet", "--data", str(cache_dir), "--out", str(out), "--resume",
                                     "--epochs", "2", "--device", "cpu", "--no-show", "--no-progress"])["unet"]
    assert [row["epoch"] for row in resumed["history"]] == [1, 2]
    options = json.loads((out / "unet_config.json").read_text())["options"]
    assert (options["unet_base_width"], options["seed"], options["augment"], options["epochs"]) == (6, 7, "none", 2)

    with one_torch_thread():
        train_script.main(["--model", "unet", "--data", str(cache_dir), "--out", str(out), "--resume",
                           "--epochs", "1", "--device", "cpu", "--no-show", "--no-progress"])
    assert (f"unet: {out / 'unet_last.pt'} has finished 2 epochs, --epochs is 1: nothing left to train"
            in capsys.readouterr().out)


def test_ctrl_c_says_which_epoch_is_saved_and_how_to_continue(tmp_path, monkeypatch, capsys):
    cache_dir = build_cache(tmp_path)
    out = tmp_path / "results"
    train_one_epoch = ModelTrainer.train_one_epoch

    def interrupted_in_epoch_two(trainer, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return train_one_epoch(trainer, epoch)

    monkeypatch.setattr(ModelTrainer, "train_one_epoch", interrupted_in_epoch_two)
    arguments = ["--model", "unet", "--data", str(cache_dir), "--out", str(out), "--epochs", "3",
                 "--unet-base-width", "4", "--device", "cpu", "--no-show", "--no-progress"]
    with one_torch_thread():
        assert run_cli(train_script.main, arguments) == 130
    assert capsys.readouterr().err.splitlines() == [
        f"error: interrupted: unet epoch 1 is saved in {out / 'unet_last.pt'}; continue with "
        f"`python train.py --model unet --data {cache_dir} --out {out} --resume`"
    ]
    assert load_checkpoint(out / "unet_last.pt")["epoch"] == 1


def test_ctrl_c_inside_a_long_native_call_is_announced_at_once_then_the_run_stops(tmp_path):
    cache_dir = build_cache(tmp_path)
    out = tmp_path / "results"
    process = subprocess.Popen(
        train_script_command("--model", "unet", "--data", str(cache_dir), "--out", str(out), "--epochs", "3",
                             "--no-progress", script=PAUSED_TRAINING_SCRIPT),
        env={**script_environment(), "PAUSE_BEFORE_EPOCH": "2"},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    output, errors = LineReader(process.stdout), LineReader(process.stderr)
    output.wait_for("paused before epoch 2")
    process.send_signal(signal.SIGINT)
    # The run sits in a native call that returns only when told to: the announcement can only come from the
    # signal itself, not from Python noticing it afterwards.
    assert errors.wait_for("stopping") == (
        "stopping: waiting for unet's running computation to return (one training step can take minutes on a "
        "CPU); the epoch in progress is dropped")
    process.stdin.write("continue\n")
    process.stdin.flush()
    assert process.wait(timeout=HANG_GUARD_SECONDS) == 130
    assert errors.rest() == [
        f"error: interrupted: unet epoch 1 is saved in {out / 'unet_last.pt'}; continue with "
        f"`python train.py --model unet --data {cache_dir} --out {out} --resume`"
    ]


def test_resuming_a_no_pretrained_deeplabv3_run_downloads_nothing(tmp_path, monkeypatch):
    cache_dir = build_cache(tmp_path)
    out = tmp_path / "results"
    run_train(model="mobilenetv3", data=cache_dir, out=out, epochs=1, pretrained="none")

    def no_network(weights, description):
        raise AssertionError(f"tried to download the {description} weights")

    monkeypatch.setattr(deeplabv3, "download_state_dict", no_network)
    with one_torch_thread():
        # The exact command an interrupted run prints: --no-pretrained is not repeated.
        resumed = train_script.main(["--model", "mobilenetv3", "--data", str(cache_dir), "--out", str(out),
                                     "--resume", "--device", "cpu", "--no-show", "--no-progress"])
    assert [row["epoch"] for row in resumed["mobilenetv3"]["history"]] == [1]
    assert json.loads((out / "mobilenetv3_config.json").read_text())["options"]["pretrained"] == "none"


def test_resume_with_a_weight_average_equals_an_uninterrupted_run(tmp_path):
    cache_dir = build_cache(tmp_path)
    options = {"model": "unet", "data": cache_dir, "ema_decay": 0.9, "augment": "full"}
    whole = run_train(**options, out=tmp_path / "whole", epochs=2)["unet"]
    run_train(**options, out=tmp_path / "resumed", epochs=1)
    resumed = run_train(**options, out=tmp_path / "resumed", epochs=2, resume=True)["unet"]
    assert without_timings(resumed["history"]) == without_timings(whole["history"])
    assert resumed["test"]["state_dict_digest"] == whole["test"]["state_dict_digest"]
    whole_last, resumed_last = (load_checkpoint(tmp_path / run / "unet_last.pt") for run in ("whole", "resumed"))
    assert whole_last["weight_average_updates"] == resumed_last["weight_average_updates"] == 2 * 2  # 8 images / 4
    for key in ("state_dict", "training_state_dict"):
        for name, tensor in whole_last[key].items():
            assert torch.equal(resumed_last[key][name], tensor), (key, name)
    # The average, not the trained weights, is what the checkpoints serve and the test scored.
    averaged, trained = whole_last["state_dict"], whole_last["training_state_dict"]
    assert not torch.equal(averaged["classifier.weight"], trained["classifier.weight"])
    best = load_checkpoint(tmp_path / "whole" / "unet.pt")
    assert whole["test"]["state_dict_digest"] == state_dict_digest(best["state_dict"])
    assert "training_state_dict" not in best
