"""bench.py rows on flip test-time augmentation: one image (batch 1) predicted without and with it, taking
turns in the same run, the cost as a ratio of times."""

from functools import partial

import torch

from benchmarks.model_rows import ModelSetting
from benchmarks.step_overhead import NUM_CLASSES
from benchmarks.table import Row, format_ratio, format_seconds
from benchmarks.throughput import new_model
from benchmarks.timing import median_seconds_alternating
from evaluation.test_time_augmentation import augmented_logits
from helpers.devices import resolve_precision
from inference.backends import TorchBackend

CPU = torch.device("cpu")
BENCHMARK = "flip TTA"
# Two forwards of the batch and two mirror images: a little over twice the time of one forward.
FLIP_GOAL = "<= 2.1x the time"


def predicted_classes(backend: TorchBackend, images: torch.Tensor, tta: str) -> torch.Tensor:
    return augmented_logits(backend.logits, images, tta).argmax(1)


def measure_flip_cost(settings: list[ModelSetting], repeats: int) -> list[Row]:
    """Per model: inference with flip TTA against inference without, on the CPU at its precision."""
    rows = []
    precision = resolve_precision("auto", CPU)
    for setting in settings:
        backend = TorchBackend(new_model(setting.name, NUM_CLASSES, setting.model_kwargs), CPU, precision)
        images = torch.randn(1, 3, *setting.image_size, generator=torch.Generator().manual_seed(0))
        seconds = median_seconds_alternating(
            {tta: partial(predicted_classes, backend, images, tta) for tta in ("none", "flip")},
            repeats=repeats, warmup=2)
        rows.append(Row(BENCHMARK, f"no TTA: {format_seconds(seconds['none'])}/image",
                        f"flip TTA: {format_seconds(seconds['flip'])}/image",
                        f"{format_ratio(seconds['flip'] / seconds['none'])} the time", FLIP_GOAL,
                        f"{setting.describe()}, batch 1, cpu, {precision.describe()}, {torch.get_num_threads()} "
                        f"threads, median of {repeats} alternated"))
    return rows
