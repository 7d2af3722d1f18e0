"""Reference training runs: preprocess, train from scratch, measure throughput, write the results.

    scripts/gpu_study.sh              one NVIDIA H200: all four models at 496×304, 30 epochs each, <= 9 min
    scripts/cpu_study.sh              2 CPU cores: a U-net of base width 32 at 240×144, ~30 min of training
    scripts/gpu_study.sh --dry-run    the whole pipeline at toy sizes on the CPU, 1 epoch (also DRY_RUN=1)

Both wrappers run `python -m scripts.study --profile gpu|cpu [flags]` from the repository root. Steps:
 1. preprocess.py into the profile's cache (timed);
 2. per model, the trainer's training throughput on a few batches, alone on the device, its FLOPs per
    image (FlopCounterMode, forward × 3 for forward + backward) and, on CUDA, the model FLOPs utilisation
    against --peak-tflops; the CPU profile picks the epoch count that fits its time budget from this;
 3. `train.py --model NAME --no-pretrained` per model, as separate processes (up to --parallel at once,
    so several models share the GPU), early stopping off so that every model runs every epoch;
 4. results: comparison figure (val accuracy, loss and mIoU per model against epochs) copied to the
    profile's figure path, summary.md (training table, throughput, a README-ready table, the run's
    settings), a prediction figure per model on the first test image;
 5. when the environment variable OUT names a folder: summary.md, the figure and results.tar.gz (every
    output but the checkpoints) are copied there.
"""

import argparse
import contextlib
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import torch

from atomic_files import atomic_write_text
from benchmarks.flops import (
    FORWARD_AND_BACKWARD_PER_FORWARD,
    H200_BF16_DENSE_PEAK_FLOPS,
    forward_flops_per_image,
)
from benchmarks.model_rows import inference_seconds_per_image
from benchmarks.throughput import build_trainer, new_model, trainer_images_per_second
from dataset import Cache, load_cache
from errors import ClothVisionError, run_cli
from img_test import test_split_image, test_with_image
from models import MODEL_NAMES, count_parameters
from preprocess import preprocess
from trainers.metrics import metrics_from_confusion
from trainers.plots import plot_comparison
from trainers.summary import ModelSummary, summary_markdown

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
# Forward cost of a validation image relative to a training image's forward + backward.
EVALUATION_COST_PER_TRAINING_IMAGE = 1 / 3
# What preprocessing, model building and the final test evaluation take beside the training epochs, on
# the CPU: the epoch count is chosen so that training plus this fits the budget.
CPU_FIXED_COST_SECONDS = 120


@dataclass(frozen=True)
class StudyProfile:
    """One kind of reference run: where it runs, what it trains, for how long, and where results go."""

    name: str
    title: str
    device: str
    image_size: tuple[int, int]
    models: tuple[str, ...]
    unet_base_width: int
    batch_size: int
    epochs: int | None  # None: as many as fit training_budget_seconds
    training_budget_seconds: float
    stop_at_budget: bool  # True: training still running when the budget ends is stopped
    parallel: int
    image_limit: int | None
    measurement_steps: int
    cache_dir: Path
    results_dir: Path
    figure_path: Path
    prediction_figure_suffix: str


GPU_PROFILE = StudyProfile(
    "gpu", "GPU study (one NVIDIA H200)", "cuda", (496, 304), MODEL_NAMES, unet_base_width=70,
    batch_size=8, epochs=30, training_budget_seconds=9 * 60, stop_at_budget=True, parallel=4,
    image_limit=None, measurement_steps=10, cache_dir=Path("data/processed"), results_dir=Path("results"),
    figure_path=Path("readme_imgs/graph.png"), prediction_figure_suffix="",
)
CPU_PROFILE = StudyProfile(
    "cpu", "CPU study (a small U-net at 240×144)", "cpu", (240, 144), ("unet",), unet_base_width=32,
    batch_size=8, epochs=None, training_budget_seconds=30 * 60, stop_at_budget=False, parallel=1,
    image_limit=None, measurement_steps=3, cache_dir=Path("data/processed_240x144"),
    results_dir=Path("results/cpu"), figure_path=Path("readme_imgs/graph_cpu.png"),
    prediction_figure_suffix="_cpu",
)
PROFILES = {profile.name: profile for profile in (GPU_PROFILE, CPU_PROFILE)}


def dry_run_variant(profile: StudyProfile) -> StudyProfile:
    """The same steps at toy size on the CPU, 1 epoch, written under results/dry-run-<profile>.

    No time budget stops its training: it proves that the steps fit together, on however slow a machine."""
    folder = Path(f"results/dry-run-{profile.name}")
    return replace(profile, title=f"DRY RUN of the {profile.title}: toy sizes on the CPU, no real numbers",
                   device="cpu", image_size=(48, 32), unet_base_width=8, batch_size=2, epochs=1,
                   stop_at_budget=False,
                   parallel=min(profile.parallel, 2), image_limit=16, measurement_steps=2,
                   cache_dir=folder / "cache", results_dir=folder, figure_path=folder / "graph.png")


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


def say(message: str) -> None:
    print(f"[study {time.strftime('%H:%M:%S')}] {message}", flush=True)


def check_device(profile: StudyProfile) -> torch.device:
    """Fail at once, before any work, when the profile needs CUDA and there is none."""
    if profile.device == "cuda" and not torch.cuda.is_available():
        raise ClothVisionError(f"the {profile.title} needs a CUDA GPU, but torch {torch.__version__} sees "
                               "none: run it on the GPU machine, or use scripts/cpu_study.sh, or --dry-run")
    return torch.device(profile.device)


def subset_cache(cache: Cache, train_images: int) -> Cache:
    """The same arrays with a train split cut to train_images rows, for a short throughput measurement."""
    split = dict(cache.meta["split"], train=cache.meta["split"]["train"][:train_images])
    return replace(cache, meta=dict(cache.meta, split=split))


def model_kwargs_for(name: str, profile: StudyProfile) -> dict:
    return {"base_width": profile.unet_base_width} if name == "unet" else {}


def measure_model(name: str, cache: Cache, profile: StudyProfile, device: torch.device,
                  scratch_dir: Path) -> ModelMeasurement:
    """Training throughput of the project's trainer (alone on the device), FLOPs and inference latency."""
    kwargs = model_kwargs_for(name, profile)
    model = new_model(name, len(cache.class_names), kwargs)
    parameters = count_parameters(model)
    forward_flops = forward_flops_per_image(model, profile.image_size)
    short_cache = subset_cache(cache, profile.batch_size * profile.measurement_steps)
    trainer = build_trainer(model, name, kwargs, short_cache, device, profile.batch_size, scratch_dir)
    images_per_second = trainer_images_per_second(trainer, epochs=2 if device.type == "cuda" else 1)
    inference_seconds = inference_seconds_per_image(model, profile.image_size, device, repeats=5)
    del trainer, model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return ModelMeasurement(name, parameters, forward_flops, images_per_second, inference_seconds)


def estimated_epoch_seconds(measurement: ModelMeasurement, cache: Cache) -> float:
    train_images = len(cache.split_indices("train"))
    evaluated_images = len(cache.split_indices("val"))
    return (train_images + EVALUATION_COST_PER_TRAINING_IMAGE * evaluated_images) \
        / measurement.training_images_per_second


def choose_epochs(profile: StudyProfile, measurements: list[ModelMeasurement], cache: Cache) -> int:
    """The profile's epochs, or as many as fit its training budget (at least 1)."""
    if profile.epochs is not None:
        return profile.epochs
    seconds_per_epoch = sum(estimated_epoch_seconds(measurement, cache) for measurement in measurements)
    return max(1, int((profile.training_budget_seconds - CPU_FIXED_COST_SECONDS) / seconds_per_epoch))


def training_command(name: str, profile: StudyProfile, epochs: int) -> list[str]:
    # patience above the epoch count: early stopping never ends a run before its last epoch.
    return [sys.executable, "train.py", "--model", name, "--data", str(profile.cache_dir),
            "--out", str(profile.results_dir), "--epochs", str(epochs),
            "--batch-size", str(profile.batch_size),
            "--device", profile.device, "--patience", str(epochs + 1),
            "--unet-base-width", str(profile.unet_base_width), "--no-pretrained", "--no-show"]


def run_training(profile: StudyProfile, epochs: int, deadline: float | None) -> dict[str, int | None]:
    """Train each model in its own train.py process, at most profile.parallel at a time.

    Returns each model's exit code; None for a model stopped at the deadline (its last finished epoch's
    files stay). Logs go to <results>/logs/<model>.log.
    """
    log_dir = profile.results_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    environment = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1",
                       OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // profile.parallel)))
    waiting, running, exit_codes = list(profile.models), {}, {}
    while waiting or running:
        while waiting and len(running) < profile.parallel:
            name = waiting.pop(0)
            command = training_command(name, profile, epochs)
            say(f"training {name}: {' '.join(command[1:])}")
            with open(log_dir / f"{name}.log", "w", encoding="utf-8") as log:
                running[name] = subprocess.Popen(command, cwd=REPOSITORY_ROOT, env=environment, stdout=log,
                                                 stderr=subprocess.STDOUT)
        for name, process in list(running.items()):
            if process.poll() is not None:
                exit_codes[name] = process.returncode
                say(f"{name} finished with exit code {process.returncode}")
                del running[name]
        if deadline is not None and time.monotonic() > deadline:
            for name, process in running.items():
                say(f"{name} is still training at the deadline: stopping it")
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=30)
                process.kill()
                exit_codes[name] = None
            exit_codes.update({name: None for name in waiting})
            break
        time.sleep(1)
    return exit_codes


def read_history(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [{key: int(value) if key == "epoch" else float(value) for key, value in row.items()}
                for row in csv.DictReader(handle)]


def model_summary(name: str, history: list[dict], test_report: dict, parameters: int) -> ModelSummary:
    best = history[test_report["best_epoch"] - 1]
    return ModelSummary(name, parameters, len(history), test_report["best_epoch"], best["val_miou"],
                        test_report["pixel_accuracy"], test_report["miou"], test_report["fw_iou"],
                        sum(row["seconds"] for row in history) / len(history))


def throughput_table(measurements: list[ModelMeasurement], device: torch.device, peak_flops: float) -> str:
    lines = ["| model | parameters | forward GFLOP / image | trainer images/s | achieved TFLOP/s | MFU |",
             "|---|---:|---:|---:|---:|---:|"]
    for item in measurements:
        utilisation = f"{100 * item.achieved_flops / peak_flops:.1f} %" if device.type == "cuda" else "-"
        lines.append(f"| {item.name} | {item.parameters / 1e6:.2f} M | {item.forward_flops / 1e9:.1f} "
                     f"| {item.training_images_per_second:.1f} | {item.achieved_flops / 1e12:.2f} "
                     f"| {utilisation} |")
    return "\n".join(lines)


def all_background_metrics(confusion_matrix: list[list[int]]) -> dict:
    """The metrics of a model that predicts background (class 0) for every pixel of the same split."""
    true_pixels = torch.tensor(confusion_matrix, dtype=torch.int64).sum(dim=1)
    background_everywhere = torch.zeros(len(true_pixels), len(true_pixels), dtype=torch.int64)
    background_everywhere[:, 0] = true_pixels
    return metrics_from_confusion(background_everywhere)


def metric_cells(report: dict) -> str:
    return (f"{100 * report['pixel_accuracy']:.1f} % | {100 * report['mean_accuracy']:.1f} % "
            f"| {100 * report['miou']:.1f} % | {100 * report['fw_iou']:.1f} %")


def readme_table(measurements: list[ModelMeasurement], reports: dict[str, dict]) -> str:
    lines = ["| model | parameters | test pixel accuracy | test mean accuracy | test mIoU | test fw-IoU "
             "| ms / image |", "|---|---:|---:|---:|---:|---:|---:|"]
    if reports:
        # Every model is tested on the same split, so any one's confusion matrix gives the baseline.
        baseline = all_background_metrics(next(iter(reports.values()))["confusion_matrix"])
        lines.append(f"| all-background baseline | – | {metric_cells(baseline)} | – |")
    for item in measurements:
        if item.name in reports:
            lines.append(f"| {item.name} | {item.parameters / 1e6:.2f} M | {metric_cells(reports[item.name])} "
                         f"| {1e3 * item.inference_seconds:.1f} |")
    return "\n".join(lines)


def write_prediction_figures(profile: StudyProfile, data_dir: Path, names: list[str]) -> list[Path]:
    """Original | Label | Prediction on the first test image, one figure per trained model."""
    figures = []
    for name in names:
        checkpoint = profile.results_dir / f"{name}.pt"
        path = profile.figure_path.parent / f"prediction_{name}{profile.prediction_figure_suffix}.png"
        with contextlib.redirect_stdout(io.StringIO()):
            test_with_image(test_split_image(checkpoint, 0, data_dir), checkpoint, show=False, save_to=path,
                            device=profile.device)
        figures.append(path)
    return figures


def export(profile: StudyProfile, out_dir: Path, files: list[Path]) -> None:
    """Copy summary and figure to out_dir, and every output except checkpoints as results.tar.gz."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in files[:2]:
        if path.is_file():
            shutil.copy2(path, out_dir / path.name)
    # This study's outputs only: the results folder may hold other runs in subfolders (results/cpu, ...).
    written = [*profile.results_dir.glob("*"), *(profile.results_dir / "logs").glob("*"), *files[2:]]
    with tarfile.open(out_dir / "results.tar.gz", "w:gz") as archive:
        for path in sorted(set(written)):
            if path.is_file() and path.suffix != ".pt":
                archive.add(path, arcname=str(path))
    say(f"copied {', '.join(path.name for path in files[:2])} and results.tar.gz to {out_dir}")


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Reference training run (see scripts/gpu_study.sh).", add_help=add_help)
    parser.add_argument("--profile", choices=tuple(PROFILES), default="gpu",
                        help="gpu: all four models on one H200; cpu: a small U-net on 2 cores "
                             "(default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true", default=os.environ.get("DRY_RUN") == "1",
                        help="every step at toy sizes on the CPU for 1 epoch, into results/dry-run-<profile> "
                             "(default: off, on when the environment variable DRY_RUN is 1)")
    parser.add_argument("--data", type=Path, default=Path("data"),
                        help="dataset folder (original CCP or Kaggle layout) (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per model (default: the profile's; cpu: as many as fit its budget)")
    parser.add_argument("--parallel", type=int, default=None,
                        help="models trained at the same time (default: the profile's; gpu 4, cpu 1)")
    parser.add_argument("--batch-size", type=int, default=None, help="images per batch (default: the profile's, 8)")
    parser.add_argument("--unet-base-width", type=int, default=None,
                        help="channels of the U-net's first block (default: the profile's, gpu 70, cpu 32)")
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="minutes for the whole study; gpu: training still running then is stopped; cpu: "
                             "the epoch count is fitted to it (default: the profile's, gpu 9, cpu 30)")
    parser.add_argument("--peak-tflops", type=float, default=H200_BF16_DENSE_PEAK_FLOPS / 1e12,
                        help="the GPU's dense bf16 peak for the MFU (default: %(default)g, the H200 SXM "
                             "datasheet's)")
    return parser


def profile_from_args(args: argparse.Namespace) -> StudyProfile:
    profile = PROFILES[args.profile]
    if args.dry_run:
        profile = dry_run_variant(profile)
    overrides = {"epochs": args.epochs, "parallel": args.parallel, "batch_size": args.batch_size,
                 "unet_base_width": args.unet_base_width,
                 "training_budget_seconds": None if args.budget_minutes is None else 60 * args.budget_minutes}
    for name, value in overrides.items():
        if value is not None and value <= 0:
            raise ClothVisionError(f"--{name.replace('_', '-')} {value}: pass a positive number")
    return replace(profile, **{name: value for name, value in overrides.items() if value is not None})


@dataclass
class StudyRun:
    """What the steps of one study found, for the summary."""

    profile: StudyProfile
    device: torch.device
    hardware: str
    peak_flops: float
    command: str
    started: float
    started_wall: datetime
    image_count: int = 0
    train_image_count: int = 0
    preprocess_seconds: float = 0.0
    epochs: int = 0
    training_seconds: float = 0.0
    trained_images: int = 0


def preprocess_step(run: StudyRun, data_dir: Path) -> Cache:
    profile = run.profile
    height, width = profile.image_size
    say(f"preprocessing {data_dir} at {height}x{width} into {profile.cache_dir}")
    started = time.perf_counter()
    preprocess(data_dir, profile.cache_dir, profile.image_size, limit=profile.image_limit)
    run.preprocess_seconds = time.perf_counter() - started
    cache = load_cache(profile.cache_dir)
    run.image_count = len(cache.meta["ids"])
    run.train_image_count = len(cache.split_indices("train"))
    say(f"preprocessed {run.image_count} images in {run.preprocess_seconds:.1f} s "
        f"({run.image_count / run.preprocess_seconds:.1f} images/s)")
    return cache


def measurement_step(run: StudyRun, cache: Cache) -> list[ModelMeasurement]:
    if run.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as train.py sets it
    measurements = []
    for name in run.profile.models:
        scratch_dir = run.profile.results_dir / "measurement"
        measurement = measure_model(name, cache, run.profile, run.device, scratch_dir)
        measurements.append(measurement)
        say(f"{name}: {measurement.describe(run.device, run.peak_flops)}")
    return measurements


def training_step(run: StudyRun, measurements: list[ModelMeasurement], cache: Cache) -> list[str]:
    """Train every model; returns those that finished."""
    profile = run.profile
    run.epochs = choose_epochs(profile, measurements, cache)
    estimate = run.epochs * sum(estimated_epoch_seconds(measurement, cache) for measurement in measurements)
    say(f"training {', '.join(profile.models)} for {run.epochs} epoch(s) each, {profile.parallel} at a time; "
        f"about {estimate / 60:.1f} min of device time if the models ran one after another")
    # The last minute of the budget is kept for the figures and the summary.
    deadline = run.started + profile.training_budget_seconds - 60 if profile.stop_at_budget else None
    if deadline is not None and estimate > deadline - time.monotonic():
        say(f"warning: that is more than the {(deadline - time.monotonic()) / 60:.1f} min left for training; "
            "models still training then are stopped (their curves so far are kept)")
    started = time.perf_counter()
    exit_codes = run_training(profile, run.epochs, deadline)
    run.training_seconds = time.perf_counter() - started
    return [name for name in profile.models if exit_codes.get(name) == 0]


def summary_text(run: StudyRun, finished: list[str], summaries: list[ModelSummary],
                 measurements: list[ModelMeasurement], reports: dict[str, dict]) -> str:
    profile, on_cuda = run.profile, run.device.type == "cuda"
    unfinished = [name for name in profile.models if name not in finished]
    return "\n".join([
        f"# {profile.title}", "",
        f"Run {run.started_wall:%Y-%m-%d %H:%M} UTC on {run.hardware}, torch {torch.__version__}: "
        f"`{run.command}`.",
        f"{run.image_count} images at {profile.image_size[0]}×{profile.image_size[1]}, preprocessed in "
        f"{run.preprocess_seconds:.1f} s; {run.epochs} epoch(s) per model from scratch (U-net base width "
        f"{profile.unet_base_width}), batch {profile.batch_size}, early stopping off, {profile.parallel} "
        f"model(s) trained at a time; training took {run.training_seconds / 60:.1f} min "
        f"({run.trained_images / run.training_seconds:.1f} training images/s over all models), the whole "
        f"study {(time.monotonic() - run.started) / 60:.1f} min.",
        *([f"**Not finished** (failed, or stopped at the time budget): {', '.join(unfinished)}; see logs/."]
          if unfinished else []),
        "", summary_markdown(summaries), "",
        "## Training throughput (each model alone on the device, before the runs)", "",
        f"The trainer's train_one_epoch over {profile.measurement_steps} batches of {profile.batch_size} "
        "after a warm-up epoch. FLOPs: FlopCounterMode on one image's forward pass, × 3 for forward + "
        "backward"
        + (f"; MFU against {run.peak_flops / 1e12:g} TFLOP/s, the H200 SXM datasheet's dense bf16 peak."
           if on_cuda else "."), "",
        throughput_table(measurements, run.device, run.peak_flops), "",
        "## For the README", "",
        "Test metrics of each model's best checkpoint (highest val mIoU); ms / image: batch of one, "
        + ("CUDA, bf16 autocast" if on_cuda else "CPU, float32") + ", median of 5.", "",
        readme_table(measurements, reports), "",
    ])


def report_step(run: StudyRun, data_dir: Path, finished: list[str],
                measurements: list[ModelMeasurement]) -> None:
    profile = run.profile
    histories = {name: read_history(profile.results_dir / f"{name}.csv") for name in profile.models
                 if (profile.results_dir / f"{name}.csv").is_file()}
    # Epochs each model completed × the train split (train batches drop their remainder).
    train_images = run.train_image_count // profile.batch_size * profile.batch_size
    run.trained_images = sum(len(history) for history in histories.values()) * train_images
    reports = {name: json.loads((profile.results_dir / f"{name}_test.json").read_text(encoding="utf-8"))
               for name in finished}
    if histories:
        plot_comparison(histories, profile.figure_path)
    parameters = {item.name: item.parameters for item in measurements}
    summaries = [model_summary(name, histories[name], reports[name], parameters[name]) for name in finished]
    prediction_figures = write_prediction_figures(profile, data_dir, finished)
    summary = summary_text(run, finished, summaries, measurements, reports)
    summary_path = atomic_write_text(profile.results_dir / "summary.md", summary)
    say(f"wrote {summary_path}, {profile.figure_path}" + "".join(f", {path}" for path in prediction_figures))
    print(summary, flush=True)
    if os.environ.get("OUT"):
        export(profile, Path(os.environ["OUT"]), [summary_path, profile.figure_path, *prediction_figures])


def main(argv: list[str] | None = None) -> None:
    started_wall, started = datetime.now(timezone.utc), time.monotonic()
    args = get_args_parser().parse_args(argv)
    profile = profile_from_args(args)
    device = check_device(profile)
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{os.cpu_count()} CPU cores"
    command = " ".join(["python -m scripts.study", *(argv if argv is not None else sys.argv[1:])])
    run = StudyRun(profile, device, hardware, args.peak_tflops * 1e12, command, started, started_wall)
    say(f"{profile.title}: {hardware}, torch {torch.__version__}")
    cache = preprocess_step(run, args.data)
    measurements = measurement_step(run, cache)
    finished = training_step(run, measurements, cache)
    report_step(run, args.data, finished, measurements)
    if len(finished) != len(profile.models):
        raise ClothVisionError(f"{len(profile.models) - len(finished)} model(s) did not finish: read "
                               f"{profile.results_dir / 'logs'}, then rerun with fewer --epochs")


if __name__ == "__main__":
    sys.exit(run_cli(main))
