"""Tiny caches and quick train.py runs shared by the training tests."""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from synthetic_ccp import write_ccp_layout

from preprocess import preprocess
from train import train

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


def train_script_command(*arguments: str) -> list[str]:
    return [sys.executable, str(REPO_ROOT / "train.py"), *TINY_RUN_FLAGS, *arguments]
