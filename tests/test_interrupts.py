"""helpers.interrupts: a Ctrl-C is announced by a watching thread, still interrupts, and leaves nothing set."""

import signal
import threading

import pytest

from helpers.interrupts import announced_interrupts


def test_a_ctrl_c_is_announced_still_interrupts_and_the_wakeup_fd_is_given_back():
    announced = threading.Event()
    with pytest.raises(KeyboardInterrupt), announced_interrupts(announced.set):
        signal.raise_signal(signal.SIGINT)
    # The watcher reads the signal's byte before the closed pipe's end, and the block waits for the watcher.
    assert announced.is_set()
    assert signal.set_wakeup_fd(-1) == -1
    assert not any(thread.name == "interrupt-announcer" for thread in threading.enumerate())


def test_other_signals_are_not_announced():
    announced = threading.Event()
    previous = signal.signal(signal.SIGUSR1, lambda number, frame: None)
    try:
        with announced_interrupts(announced.set):
            signal.raise_signal(signal.SIGUSR1)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert not announced.is_set()
