"""--resume after a kill -9 reaches exactly the result of a run that was never interrupted."""

import json
import signal
import subprocess
import time

import torch
from training_runs import build_cache, run_train, script_environment, train_script_command

from helpers.checkpoint import load_checkpoint, state_dict_digest

EPOCHS = 4


def without_timings(history: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key != "seconds"} for row in history]


def kill_after_first_checkpoint(command: list[str], last_checkpoint) -> int:
    """Start a training script, SIGKILL it as soon as its first last-epoch checkpoint exists, return that
    checkpoint's epoch."""
    process = subprocess.Popen(
        command, env=script_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 300
    while not last_checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.kill()
    _, errors = process.communicate()
    assert process.returncode == -signal.SIGKILL, f"the run ended before it was killed: {errors[-2000:]}"
    return load_checkpoint(last_checkpoint)["epoch"]


def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path):
    cache_dir = build_cache(tmp_path)
    whole = run_train(model="unet", data=cache_dir, out=tmp_path / "whole", epochs=EPOCHS)["unet"]

    out = tmp_path / "interrupted"
    command = train_script_command(
        "--model", "unet", "--data", str(cache_dir), "--out", str(out), "--epochs", str(EPOCHS)
    )
    killed_at = kill_after_first_checkpoint(command, out / "unet_last.pt")
    assert 1 <= killed_at < EPOCHS
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
        assert torch.equal(resumed_checkpoint["rng"]["torch"], whole_checkpoint["rng"]["torch"])
        assert resumed_checkpoint["scheduler"] == whole_checkpoint["scheduler"]


def test_resuming_a_finished_run_only_reevaluates_it(tmp_path):
    cache_dir = build_cache(tmp_path)
    first = run_train(model="unet", data=cache_dir, out=tmp_path / "results", epochs=1)["unet"]
    again = run_train(model="unet", data=cache_dir, out=tmp_path / "results", epochs=1, resume=True)["unet"]
    assert again["history"] == first["history"]
    assert again["test"] == first["test"]
