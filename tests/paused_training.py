"""train.py that stops at a known point, for tests that interrupt or kill a run at that point whatever the
machine's speed (run as a script, alone or under torchrun, with train.py's arguments):

    PAUSE_BEFORE_EPOCH=2 python tests/paused_training.py --model unet ...

Before training epoch PAUSE_BEFORE_EPOCH (the ones before it saved), every process, or only the one whose RANK
is PAUSE_RANK, prints PAUSED_LINE and waits inside a native call, as a long backward pass does: the GIL is
released and a Ctrl-C takes effect only when the call returns. A line 'continue' on stdin ends the wait; without
one (stdin at its end, or never written) the process waits until it is killed.
"""

import os
import signal
import sys
import threading
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import train  # noqa: E402 (the repository root is on the path only now)
from helpers.errors import run_cli  # noqa: E402
from trainers import ModelTrainer  # noqa: E402

PAUSED_LINE = "paused before epoch {epoch}"


def wait_in_a_native_call(paused_line: str) -> None:
    """Print paused_line, then wait in a native call; a Ctrl-C meanwhile (even one that comes before the call
    starts) raises KeyboardInterrupt only after it returns, as during a long backward pass."""
    interrupts = []
    default_handler = signal.signal(signal.SIGINT, lambda number, frame: interrupts.append(number))
    released = torch.futures.Future()

    def release_on_continue() -> None:
        if sys.stdin.readline().strip() == "continue":
            released.set_result(None)

    try:
        threading.Thread(target=release_on_continue, daemon=True).start()
        print(paused_line, flush=True)
        released.wait()
    finally:
        signal.signal(signal.SIGINT, default_handler)
    if interrupts:
        raise KeyboardInterrupt


def pause_before(epoch: int, rank: str | None) -> None:
    prepare_epoch = ModelTrainer.prepare_epoch

    def paused_prepare_epoch(trainer: ModelTrainer, current: int) -> None:
        if current == epoch and rank in (None, os.environ.get("RANK", "0")):
            wait_in_a_native_call(PAUSED_LINE.format(epoch=current))
        prepare_epoch(trainer, current)

    ModelTrainer.prepare_epoch = paused_prepare_epoch


if __name__ == "__main__":
    pause_before(int(os.environ["PAUSE_BEFORE_EPOCH"]), os.environ.get("PAUSE_RANK"))
    sys.exit(run_cli(train.main))
