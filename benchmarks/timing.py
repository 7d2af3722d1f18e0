"""Wall-clock timing that shares noise fairly between the contenders of one benchmark row."""

import statistics
import time
from collections.abc import Callable

import torch


def synchronizer(device: torch.device) -> Callable[[], None]:
    """A function that waits for queued accelerator work, so a timer stops when the work is done."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None


def time_call(function: Callable[[], object], synchronize: Callable[[], None] = lambda: None) -> float:
    """Seconds one call of function takes, accelerator work included."""
    synchronize()
    start = time.perf_counter()
    function()
    synchronize()
    return time.perf_counter() - start


def median_seconds_alternating(contenders: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                               synchronize: Callable[[], None] = lambda: None) -> dict[str, float]:
    """Median seconds per call of each contender.

    The contenders take turns inside every round (A, B, A, B, ...) rather than running one block each,
    so a slow spell of a shared machine lands on all of them alike.
    """
    for _ in range(warmup):
        for function in contenders.values():
            function()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, function in contenders.items():
            samples[name].append(time_call(function, synchronize))
    return {name: statistics.median(values) for name, values in samples.items()}
