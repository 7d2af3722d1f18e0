"""A study's measurements before training: per model, the trainer's throughput, FLOPs and inference latency."""

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from benchmarks.flops import FORWARD_AND_BACKWARD_PER_FORWARD, forward_flops_per_image
from benchmarks.model_rows import inference_seconds_per_image
from benchmarks.throughput import build_trainer, new_model, trainer_images_per_second
from dataset import Cache
from models import count_parameters
from scripts.study_plan import StudyProfile


@dataclass
class ModelMeasurement:
    name: str
    parameters: int
    forward_flops: int
    training_images_per_second: float
    inference_seconds: float

    @property
    def achieved_flops(self) -> float:
        """Model arithmetic per second while training: forward + backward FLOPs × images/s."""
        return FORWARD_AND_BACKWARD_PER_FORWARD * self.forward_flops * self.training_images_per_second

    def describe(self, device: torch.device, peak_flops: float) -> str:
        utilisation = f", MFU {100 * self.achieved_flops / peak_flops:.1f} %" if device.type == "cuda" else ""
        return (f"{self.training_images_per_second:.1f} training images/s, "
                f"{self.achieved_flops / 1e12:.2f} TFLOP/s of model arithmetic{utilisation}")


def subset_cache(cache: Cache, train_images: int) -> Cache:
    """The same arrays with a train split cut to train_images rows, for a short throughput measurement."""
    split = dict(cache.meta["split"], train=cache.meta["split"]["train"][:train_images])
    return replace(cache, meta=dict(cache.meta, split=split))


def model_kwargs_for(name: str, profile: StudyProfile) -> dict:
    return {"base_width": profile.unet_base_width} if name == "unet" else {}


def measure_model(name: str, cache: Cache, profile: StudyProfile, device: torch.device,
                  scratch_dir: Path) -> ModelMeasurement:
    """Training throughput of the project's trainer with the profile's recipe, FLOPs and inference latency."""
    kwargs = model_kwargs_for(name, profile)
    model = new_model(name, len(cache.class_names), kwargs)
    parameters = count_parameters(model)
    forward_flops = forward_flops_per_image(model, profile.image_size)
    short_cache = subset_cache(cache, profile.batch_size * profile.measurement_steps)
    trainer = build_trainer(model, name, kwargs, short_cache, device, profile.batch_size, scratch_dir,
                            precision=profile.precision, augment=profile.augment)
    images_per_second = trainer_images_per_second(trainer, epochs=2 if device.type == "cuda" else 1)
    inference_seconds = inference_seconds_per_image(model, profile.image_size, device, repeats=5,
                                                    precision=profile.precision)
    del trainer, model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return ModelMeasurement(name, parameters, forward_flops, images_per_second, inference_seconds)


def throughput_table(measurements: list[ModelMeasurement], device: torch.device, peak_flops: float) -> str:
    lines = ["| model | parameters | forward GFLOP / image | trainer images/s | achieved TFLOP/s | MFU |",
             "|---|---:|---:|---:|---:|---:|"]
    for item in measurements:
        utilisation = f"{100 * item.achieved_flops / peak_flops:.1f} %" if device.type == "cuda" else "-"
        lines.append(f"| {item.name} | {item.parameters / 1e6:.2f} M | {item.forward_flops / 1e9:.1f} "
                     f"| {item.training_images_per_second:.1f} | {item.achieved_flops / 1e12:.2f} "
                     f"| {utilisation} |")
    return "\n".join(lines)
