"""train.py under torchrun on CPU (Gloo): sharded metrics equal one process's, resume, and a dying rank."""

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from training_runs import (
    HANG_GUARD_SECONDS,
    PAUSED_TRAINING_SCRIPT,
    REPO_ROOT,
    TINY_RUN_FLAGS,
    LineReader,
    build_cache,
    script_environment,
    single_torch_thread,  # noqa: F401 (autouse fixture: tests run on one thread)
)

from helpers.checkpoint import load_checkpoint
from helpers.errors import ClothVisionError
from trainers.distributed import SINGLE_PROCESS, DistributedContext, detect_distributed
from trainers.evaluation import evaluate_checkpoint

PROCESSES = 2


def torchrun_command(*arguments: str, script: Path = REPO_ROOT / "train.py") -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={PROCESSES}",
        str(script),
        *TINY_RUN_FLAGS,
        "--batch-size",
        "2",
        *arguments,
    ]


def history_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def worker_with_rank(launcher_pid: int, rank: int) -> int:
    """The pid of the torchrun worker process that has RANK=rank."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if parent == launcher_pid and f"RANK={rank}".encode() in environment:
            return int(entry.name)
    raise AssertionError(f"no worker with RANK={rank} under pid {launcher_pid}")


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, SINGLE_PROCESS),
        ({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}, DistributedContext(1, 4, 1)),
        ({"RANK": "9", "WORLD_SIZE": "16", "LOCAL_RANK": "1"}, DistributedContext(9, 16, 1)),
    ],
)
def test_detects_the_launcher_environment(environment, expected):
    assert detect_distributed(environment) == expected


@pytest.mark.parametrize("environment", [{"RANK": "x", "WORLD_SIZE": "2"}, {"RANK": "2", "WORLD_SIZE": "2"}])
def test_refuses_an_inconsistent_launcher_environment(environment):
    with pytest.raises(ClothVisionError, match="torchrun"):
        detect_distributed(environment)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the workers through /proc")
def test_the_weight_average_under_torchrun_is_the_same_on_every_rank(tmp_path):
    cache_dir = build_cache(tmp_path, count=17)
    out = tmp_path / "results"
    done = subprocess.run(
        torchrun_command("--model", "unet", "--data", str(cache_dir), "--out", str(out), "--epochs", "2",
                         "--ema-decay", "0.9"),
        env=script_environment(), capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    last = load_checkpoint(out / "unet_last.pt")
    # 11 train images in batches of 2 per rank: 3 steps an epoch on each rank.
    assert last["weight_average_updates"] == 2 * 3
    assert not torch.equal(last["state_dict"]["classifier.weight"], last["training_state_dict"]["classifier.weight"])
    # The val metrics summed over both ranks' shards are those of rank 0's average on the whole split: every
    # rank evaluated the same averaged weights.
    single_val = evaluate_checkpoint(out / "unet_last.pt", cache_dir, "val", device="cpu")["at_training_size"]
    assert single_val["confusion_matrix"] == last["metrics"]["confusion_matrix"].tolist()
    assert single_val["loss"] == pytest.approx(last["metrics"]["loss"], rel=1e-5)


def test_torchrun_trains_resumes_and_ends_when_a_rank_dies(tmp_path):
    # 17 images: train/val/test 11/3/3, so the ranks' val and test shards differ in size (2 and 1).
    cache_dir = build_cache(tmp_path, count=17)
    out = tmp_path / "results"
    common = ["--model", "unet", "--data", str(cache_dir), "--out", str(out)]

    first = subprocess.run(
        torchrun_command(*common, "--epochs", "1"),
        env=script_environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert sorted(path.name for path in out.iterdir()) == [
        "unet.csv",
        "unet.png",
        "unet.pt",
        "unet_config.json",
        "unet_last.pt",
        "unet_test.json",
        "unet_test_images.npz",
    ]
    assert first.stdout.count("unet epoch 1/1:") == 1  # rank 0 alone prints
    assert len(history_rows(out / "unet.csv")) == 1
    # Metrics summed over the ranks' shards equal one process evaluating the saved weights on the whole split.
    best = load_checkpoint(out / "unet.pt")
    # The per-epoch val metrics are at the training size; the test report's headline at the labels' own size.
    single_val = evaluate_checkpoint(out / "unet.pt", cache_dir, "val", device="cpu")["at_training_size"]
    assert single_val["confusion_matrix"] == best["metrics"]["confusion_matrix"].tolist()
    assert single_val["loss"] == pytest.approx(best["metrics"]["loss"], rel=1e-5)
    single_test = evaluate_checkpoint(out / "unet.pt", cache_dir, "test", device="cpu")
    report = json.loads((out / "unet_test.json").read_text())
    assert single_test["confusion_matrix"] == report["confusion_matrix"]
    assert single_test["intervals"] == report["intervals"]

    # Resume the run under torchrun for many more epochs; rank 1 pauses before epoch 3 until it is killed, so the
    # job is killed at that point however fast the machine (rank 0 waits in epoch 3's first collective, for
    # longer than the test's guard). torchrun's agent then stops rank 0; the guard only ends a test that hangs.
    launcher = subprocess.Popen(
        torchrun_command(*common, "--epochs", "500", "--resume", "--dist-timeout", str(10 * HANG_GUARD_SECONDS),
                         script=PAUSED_TRAINING_SCRIPT),
        env={**script_environment(), "PAUSE_BEFORE_EPOCH": "3", "PAUSE_RANK": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    output, errors = LineReader(launcher.stdout), LineReader(launcher.stderr)
    output.wait_for("paused before epoch 3")
    output.wait_for("unet epoch 2/500:")  # rank 0, after the epoch both ranks finished
    os.kill(worker_with_rank(launcher.pid, 1), signal.SIGKILL)
    assert launcher.wait(timeout=HANG_GUARD_SECONDS) != 0
    printed, error_lines = "\n".join(output.seen + output.rest()), "\n".join(errors.rest())
    assert "resuming after epoch 1" in printed and "unet epoch 3/500:" not in printed
    assert "rank      : 1" in error_lines and "SIGKILL" in error_lines
