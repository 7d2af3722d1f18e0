"""bench.py rows on deploying a model to a CPU: one image (batch 1) through PyTorch float32, through PyTorch at
the project's CPU precision (bf16 autocast + channels_last where the CPU has native bf16, else float32) and
through the model exported to ONNX and run by ONNX Runtime; each as a speed-up over PyTorch float32, the three
taking turns in the same run."""

from functools import partial

import torch

from benchmarks.model_rows import ModelSetting
from benchmarks.step_overhead import NUM_CLASSES
from benchmarks.table import Row, format_ratio, format_seconds
from benchmarks.throughput import new_model
from benchmarks.timing import median_seconds_alternating
from helpers.devices import Precision, resolve_precision
from helpers.errors import ClothVisionError
from inference.backends import OnnxRuntimeBackend, TorchBackend
from inference.onnx_format import EXPORT_PACKAGES, export_to_onnx, import_package

CPU = torch.device("cpu")
BENCHMARK = "CPU deployment"
# MobileNetV3 is the model picked for small hardware: its fastest CPU path should be this much faster.
DEPLOYMENT_GOALS = {"mobilenetv3": ">= 2.5x (the faster path)"}


def deployment_backends(setting: ModelSetting) -> dict:
    """The same freshly initialised network three ways: PyTorch float32, PyTorch at the CPU precision,
    ONNX Runtime."""
    def network() -> torch.nn.Module:
        return new_model(setting.name, NUM_CLASSES, setting.model_kwargs)

    return {"fp32": TorchBackend(network(), CPU, Precision("fp32", "cpu")),
            "cpu precision": TorchBackend(network(), CPU, resolve_precision("auto", CPU)),
            "onnx": OnnxRuntimeBackend(export_to_onnx(network(), setting.image_size))}


def predicted_classes(backend: TorchBackend | OnnxRuntimeBackend, images: torch.Tensor) -> torch.Tensor:
    return backend.logits(images).argmax(1)


def measure_deployment(settings: list[ModelSetting], repeats: int) -> list[Row]:
    """Per model: PyTorch at the CPU precision against PyTorch float32, and ONNX Runtime against it."""
    try:
        for package in EXPORT_PACKAGES:
            import_package(package, "measuring CPU deployment")
    except ClothVisionError as error:
        return [Row(BENCHMARK, "-", "-", f"not measured: {error}", "-", "-")]
    rows = []
    for setting in settings:
        backends = deployment_backends(setting)
        images = torch.randn(1, 3, *setting.image_size, generator=torch.Generator().manual_seed(0))
        seconds = median_seconds_alternating(
            {name: partial(predicted_classes, backend, images) for name, backend in backends.items()},
            repeats=repeats, warmup=2)
        baseline = f"{backends['fp32'].describe()}: {format_seconds(seconds['fp32'])}"
        for name in ("cpu precision", "onnx"):
            rows.append(Row(BENCHMARK, baseline, f"{backends[name].describe()}: {format_seconds(seconds[name])}",
                            f"{format_ratio(seconds['fp32'] / seconds[name])} faster",
                            DEPLOYMENT_GOALS.get(setting.name, "-"),
                            f"{setting.describe()}, batch 1, cpu, {torch.get_num_threads()} threads, median of "
                            f"{repeats} alternated"))
    return rows
