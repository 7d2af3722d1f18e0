"""bench.py rows on CPU precision: bf16 against float32 per model, the augmenting loader against a U-net
training step, and whether a trained checkpoint's tiny (denormal) numbers slow inference down."""

from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.model_rows import ModelSetting
from benchmarks.step_overhead import NUM_CLASSES, synthetic_cache
from benchmarks.table import Row, format_ratio, format_seconds
from benchmarks.throughput import new_model
from benchmarks.timing import median_seconds_alternating
from dataset import DeviceBatchLoader
from helpers.checkpoint import load_checkpoint
from helpers.devices import Precision, cpu_has_native_bf16, resolve_precision
from inference.backends import TorchBackend
from models import build_model_from_checkpoint
from trainers.losses import soft_jaccard_loss

CPU = torch.device("cpu")
BF16_TRAINING_GOAL = ">= 2x (U-net train step)"
AUGMENTATION_GOAL = "<= 5 % of a U-net train step"


def training_step(model_setting: ModelSetting, precision: Precision, batch_size: int, loss: str = "ce",
                  compile_backend: str | None = None):
    """A closure running one forward/backward/Adam step of a fresh model on a fixed random batch, with a loss
    of trainers.losses.LOSS_CHOICES, the model compiled with torch.compile(backend=...) when one is given."""
    model = precision.place(new_model(model_setting.name, NUM_CLASSES, model_setting.model_kwargs), CPU).train()
    forward = model if compile_backend is None else torch.compile(model, backend=compile_backend)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    images = precision.place(torch.randn(batch_size, 3, *model_setting.image_size, generator=generator), CPU)
    labels = torch.randint(0, NUM_CLASSES, (batch_size, *model_setting.image_size), generator=generator)

    def step() -> None:
        with precision.autocast():
            logits = forward(images)
        loss_value = F.cross_entropy(logits.float(), labels)
        if loss == "ce+jaccard":
            loss_value = loss_value + soft_jaccard_loss(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss_value.backward()
        optimizer.step()

    return step


def inference(model: torch.nn.Module, image_size: tuple[int, int], precision: Precision):
    """A closure predicting one image (batch of one) with model as the predictor runs it."""
    backend = TorchBackend(model, CPU, precision)
    images = torch.randn(1, 3, *image_size, generator=torch.Generator().manual_seed(0))
    return lambda: backend.logits(images).argmax(1)


def measure_precision_speedups(settings: list[ModelSetting], batch_size: int, repeats: int) -> list[Row]:
    """Per model: a training step and an inference in float32 and in bf16 autocast + channels_last,
    alternated in the same run, as ratios. Without native bf16 the rows say so instead of a ratio."""
    fp32, bf16 = Precision("fp32", "cpu"), Precision("bf16", "cpu")
    native = cpu_has_native_bf16()
    rows = []
    for setting in settings:
        steps = median_seconds_alternating({"fp32": training_step(setting, fp32, batch_size),
                                            "bf16": training_step(setting, bf16, batch_size)}, repeats=repeats)
        model = new_model(setting.name, NUM_CLASSES, setting.model_kwargs)
        predictions = median_seconds_alternating(
            {"fp32": inference(model, setting.image_size, fp32),
             "bf16": inference(new_model(setting.name, NUM_CLASSES, setting.model_kwargs), setting.image_size,
                               bf16)}, repeats=repeats, warmup=2)
        for kind, seconds, goal, shape in (
                ("train step", steps, BF16_TRAINING_GOAL if setting.name == "unet" else "-", f"batch {batch_size}"),
                ("inference", predictions, "-", "batch 1")):
            result = (f"{format_ratio(seconds['fp32'] / seconds['bf16'])} faster" if native
                      else "no native bf16 on this CPU (no AVX512-BF16 or AMX): bf16 is emulated, no ratio")
            rows.append(Row(f"CPU precision: {kind}", f"float32: {format_seconds(seconds['fp32'])}",
                            f"bf16 autocast + channels_last: {format_seconds(seconds['bf16'])}", result, goal,
                            f"{setting.describe()}, {shape}, cpu, median of {repeats} alternated"))
    return rows


def measure_augmentation_cost(setting: ModelSetting, batch_size: int, repeats: int) -> Row:
    """Seconds per batch of DeviceBatchLoader with --augment full against one U-net training step at the
    project's CPU precision, same batch size and image size."""
    cache = synthetic_cache(batch_size * 4, setting.image_size)
    loader = DeviceBatchLoader(cache, "train", batch_size, CPU, shuffle=True, augment="full", drop_last=True)
    precision = resolve_precision("auto", CPU)
    step = training_step(setting, precision, batch_size)

    def load_epoch() -> None:
        loader.set_epoch(loader.epoch + 1)
        for _ in loader:
            pass

    seconds = median_seconds_alternating({"loader": load_epoch, "step": step}, repeats=repeats)
    per_batch = seconds["loader"] / len(loader)
    return Row("data loading, augment full", f"{setting.describe()} train step ({precision.describe()}): "
               f"{format_seconds(seconds['step'])}",
               f"DeviceBatchLoader batch (zoom, crop/pad, flip, colour jitter): {format_seconds(per_batch)}",
               f"{100 * per_batch / seconds['step']:.1f} % of a step", AUGMENTATION_GOAL,
               f"cpu, batch {batch_size}, median of {repeats} alternated")


def measure_denormal_effect(checkpoint_path: Path, repeats: int) -> list[Row]:
    """Float32 inference of a trained checkpoint against the same architecture freshly initialised, with
    the CPU's handling of denormal numbers as it is and with them flushed to zero."""
    checkpoint = load_checkpoint(checkpoint_path)
    trained = build_model_from_checkpoint(checkpoint)
    fresh = new_model(checkpoint["model_name"], len(checkpoint["class_names"]), checkpoint["model_kwargs"])
    image_size = tuple(checkpoint["image_size"])
    tiny = sum(int(((parameter != 0) & (parameter.abs() < torch.finfo(torch.float32).tiny)).sum())
               for parameter in trained.state_dict().values() if parameter.is_floating_point())
    fp32 = Precision("fp32", "cpu")
    rows = []
    for flush in (False, True):
        torch.set_flush_denormal(flush)
        try:
            seconds = median_seconds_alternating({"fresh": inference(fresh, image_size, fp32),
                                                  "trained": inference(trained, image_size, fp32)},
                                                 repeats=repeats, warmup=2)
        finally:
            torch.set_flush_denormal(False)
        rows.append(Row("denormal numbers", f"freshly initialised: {format_seconds(seconds['fresh'])}",
                        f"trained ({checkpoint_path.name}): {format_seconds(seconds['trained'])}",
                        f"trained / fresh = {seconds['trained'] / seconds['fresh']:.2f}", "≈ 1.00",
                        f"{checkpoint['model_name']} {image_size[0]}×{image_size[1]}, float32, batch 1, "
                        f"flush denormals {'on' if flush else 'off'}, {tiny} denormal weights, median of "
                        f"{repeats}"))
    return rows

