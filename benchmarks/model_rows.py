"""bench.py rows 4-5: the trainer's step against a bare step of the same model, and inference latency."""

from dataclasses import dataclass, field

import torch
from torch import nn

from benchmarks.step_overhead import measure_step_overhead
from benchmarks.table import Row, format_seconds
from benchmarks.throughput import new_model
from benchmarks.timing import median_seconds_alternating, synchronizer
from helpers.devices import resolve_precision
from inference.backends import TorchBackend
from trainers import trainer_class_for


@dataclass(frozen=True)
class ModelSetting:
    """One model as a benchmark runs it: its constructor arguments and the image size it is fed."""

    name: str
    image_size: tuple[int, int]
    model_kwargs: dict = field(default_factory=dict)

    def describe(self) -> str:
        arguments = "".join(f", {key} {value}" for key, value in self.model_kwargs.items())
        return f"{self.name} ({self.image_size[0]}×{self.image_size[1]}{arguments})"


def inference_seconds_per_image(model: nn.Module, image_size: tuple[int, int], device: torch.device,
                                repeats: int, precision: str = "auto") -> float:
    """Median seconds to segment one image (batch of one), eval mode, inference_mode, after a warm-up."""
    backend = TorchBackend(model, device, resolve_precision(precision, device))
    images = torch.randn(1, 3, *image_size)
    return median_seconds_alternating({"predict": lambda: backend.logits(images).argmax(1)}, repeats=repeats,
                                      warmup=2, synchronize=synchronizer(device))["predict"]


def measure_inference(settings: list[ModelSetting], num_classes: int, devices: list[torch.device],
                      repeats: int, precision: str = "auto") -> list[Row]:
    """One inference-latency row per model and device."""
    rows = []
    for setting in settings:
        model = new_model(setting.name, num_classes, setting.model_kwargs)
        for device in devices:
            seconds = inference_seconds_per_image(model, setting.image_size, device, repeats, precision)
            arithmetic = resolve_precision(precision, device).describe()
            rows.append(Row("inference latency", "-",
                            f"{setting.describe()}: {format_seconds(seconds)}/image",
                            f"{1 / seconds:.1f} images/s", "-",
                            f"{device.type}, {arithmetic}, batch 1, median of {repeats}"))
    return rows


def measure_training_steps(settings: list[ModelSetting], device: torch.device, batch_size: int, steps: int,
                           repeats: int, precision: str = "auto") -> list[Row]:
    """One row per model from trainers.step_overhead: the trainer's epoch against a bare loop, per step."""
    rows = []
    for setting in settings:
        result = measure_step_overhead(setting.name, setting.model_kwargs, setting.image_size, batch_size,
                                       steps, repeats, device, precision)
        rows.append(Row(
            "training step",
            f"bare forward/backward/Adam on ready batches: "
            f"{format_seconds(result['bare_seconds_per_step'])}/step",
            f"{trainer_class_for(setting.name).__name__}.train_one_epoch: "
            f"{format_seconds(result['trainer_seconds_per_step'])}/step",
            f"{result['overhead_percent']:+.1f} % overhead",
            "<= 10 %",
            f"{setting.describe()}, batch {batch_size}, {device.type}, "
            f"{resolve_precision(precision, device).describe()}, median of {repeats} alternated epochs "
            f"of {steps} steps",
        ))
    return rows
