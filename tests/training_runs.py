"""Tiny caches and quick train.py runs shared by the training tests."""

import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from synthetic_ccp import write_ccp_layout

from preprocess import preprocess
from train import train
from trainers import model_trainer

REPO_ROOT = Path(__file__).resolve().parent.parent
# Small enough for a CPU shared by the whole suite: a U-net of base width 4, DeepLabV3 from scratch.
TINY_RUN = {
    "unet_base_width": 4,
    "pretrained": "none",
    "device": "cpu",
    "batch_size": 4,
    "show_plots": False,
    "show_progress": False,
}
TINY_RUN_FLAGS = [
    "--unet-base-width",
    "4",
    "--no-pretrained",
    "--device",
    "cpu",
    "--batch-size",
    "4",
    "--no-show",
]


def build_cache(root: Path, count: int = 12, size: tuple[int, int] = (32, 32)) -> Path:
    """A preprocessed cache of `count` synthetic photos at size (H, W)."""
    raw = write_ccp_layout(Path(root) / "raw", count=count, size=size)
    return preprocess(raw, Path(root) / "cache", size=size, workers=1)


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """The CPU is shared by the whole suite: two busy threads per test only wait for each other. The
    training scripts the tests start as subprocesses run on one thread too, so their numbers match."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def single_torch_thread() -> Iterator[None]:
    """Autouse in every test module that imports it."""
    with one_torch_thread():
        yield


def run_train(**arguments) -> dict:
    """train() with the tiny defaults, on one thread."""
    with one_torch_thread():
        return train(**{**TINY_RUN, **arguments})


def script_environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}


def train_script_command(*arguments: str, script: Path = REPO_ROOT / "train.py") -> list[str]:
    return [sys.executable, str(script), *TINY_RUN_FLAGS, *arguments]


# Started as a script: train.py stopped before a given epoch (see its docstring).
PAUSED_TRAINING_SCRIPT = REPO_ROOT / "tests" / "paused_training.py"
# Tests that stop a run wait for an event (a line it prints), never for a time: this only ends a hung test.
HANG_GUARD_SECONDS = 300


class LineReader:
    """A process's output stream, read line by line in a thread so that a test can wait for one line."""

    def __init__(self, stream) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, fragment: str) -> str:
        """The first line that contains fragment, read already or waited for; fails when the stream ends first."""
        for line in self.seen:
            if fragment in line:
                return line
        while True:
            try:
                line = self.lines.get(timeout=HANG_GUARD_SECONDS)
            except queue.Empty:
                raise AssertionError(
                    f"no line with {fragment!r} in {HANG_GUARD_SECONDS} s: {self.seen[-20:]}") from None
            if line is None:
                raise AssertionError(f"the output ended without a line with {fragment!r}: {self.seen[-20:]}")
            self.seen.append(line)
            if fragment in line:
                return line

    def rest(self) -> list[str]:
        """Every line still to come, once the process has ended."""
        remaining = []
        while (line := self.lines.get(timeout=HANG_GUARD_SECONDS)) is not None:
            remaining.append(line)
        self.seen.extend(remaining)
        return remaining


def fake_training_clock(monkeypatch, seconds_per_step: float, seconds_per_validation: float) -> list[float]:
    """time.perf_counter advanced only by optimizer steps and validations, so that every time a trainer measures
    is the same on any machine; returns the learning rate of every step, filled as the run goes."""
    now, rates = [0.0], []
    step, evaluate = torch.optim.Adam.step, model_trainer.evaluate

    def timed_step(optimizer, *arguments, **keywords):
        rates.append(optimizer.param_groups[0]["lr"])
        now[0] += seconds_per_step
        return step(optimizer, *arguments, **keywords)

    def timed_validation(*arguments, **keywords):
        now[0] += seconds_per_validation
        return evaluate(*arguments, **keywords)

    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(torch.optim.Adam, "step", timed_step)
    monkeypatch.setattr(model_trainer, "evaluate", timed_validation)
    return rates
