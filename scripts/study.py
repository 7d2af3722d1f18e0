"""Reference training runs: preprocess, measure, train from scratch with the project's recipe, report.

    scripts/gpu_study.sh              one NVIDIA H200: all four models at 496×304, 30 epochs each, <= 9 min
    scripts/cpu_study.sh              2 CPU cores: all four models at 240×144 at equal compute, <= 2 h
    scripts/gpu_study.sh --dry-run    the whole pipeline at toy sizes on the CPU, 1 epoch (also DRY_RUN=1)

Both wrappers run `python -m scripts.study --profile gpu|cpu [flags]` from the repository root. Steps:
 1. preprocess.py into the profile's cache (timed);
 2. per model, the trainer's training throughput on a few batches with the profile's recipe (as many CPU
    threads as each training process will have), its FLOPs per image (FlopCounterMode, forward × 3 for
    forward + backward) and, on CUDA, the model FLOPs utilisation against --peak-tflops; the CPU profile
    sets the DeepLabV3 runs' equal time limit from this (scripts/study_plan.py);
 3. `train.py --model NAME --no-pretrained --augment A --precision P` per run, as separate processes (up
    to --parallel at once), early stopping off; the CPU profile adds the U-net with --augment flip;
 4. results: comparison figure (val accuracy, loss and mIoU per run against epochs) at the profile's
    figure path, summary.md (training table, throughput, a README-ready table with the all-background
    baseline, the run's settings), a prediction figure per run on the first test image;
 5. when the environment variable OUT names a folder: summary.md, the figure and results.tar.gz (every
    output but the checkpoints) are copied there.
"""

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import torch

from benchmarks.flops import H200_BF16_DENSE_PEAK_FLOPS
from dataset import Cache, load_cache
from helpers.atomic_files import atomic_write_text
from helpers.devices import PRECISION_CHOICES, resolve_precision
from helpers.errors import ClothVisionError, run_cli
from preprocess import preprocess
from scripts.study_best import best_run, best_run_text, flip_tta_gain, tag_scores
from scripts.study_measure import ModelMeasurement, measure_model, throughput_table
from scripts.study_plan import (
    PROFILES,
    StudyProfile,
    TrainingRun,
    dry_run_variant,
    estimated_epoch_seconds,
    planned_runs,
    with_time_limits,
)
from scripts.study_report import (
    export,
    model_summary,
    read_history,
    readme_table,
    run_parameters,
    write_prediction_figures,
)
from scripts.study_training import run_training, say, threads_per_process
from trainers.plots import plot_comparison
from trainers.summary import summary_markdown


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Reference training run (see scripts/gpu_study.sh).", add_help=add_help)
    parser.add_argument("--profile", choices=tuple(PROFILES), default="gpu",
                        help="gpu: all four models on one H200; cpu: all four at 240x144 on 2 cores "
                             "(default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true", default=os.environ.get("DRY_RUN") == "1",
                        help="every step at toy sizes on the CPU for 1 epoch, into results/dry-run-<profile> "
                             "(default: off, on when the environment variable DRY_RUN is 1)")
    parser.add_argument("--data", type=Path, default=Path("data"),
                        help="dataset folder (original CCP or Kaggle layout) (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per run; cpu: of the U-net runs (default: the profile's, gpu 30, cpu 25)")
    parser.add_argument("--parallel", type=int, default=None,
                        help="runs trained at the same time (default: the profile's; gpu 4, cpu 2)")
    parser.add_argument("--batch-size", type=int, default=None, help="images per batch (default: the profile's, 8)")
    parser.add_argument("--unet-base-width", type=int, default=None,
                        help="channels of the U-net's first block (default: the profile's, gpu 70, cpu 32)")
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="minutes for the whole study; gpu: training still running then is stopped; cpu: "
                             "the DeepLabV3 runs' time limits are fitted to it (default: the profile's, gpu 9, "
                             "cpu 120)")
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default=None,
                        help="arithmetic of every run: auto (bf16 autocast + channels_last on CUDA and on CPUs with "
                             "native bf16, else float32), bf16 or fp32 (default: the profile's, auto)")
    parser.add_argument("--time-limit-minutes", type=float, default=None,
                        help="cpu: the wall-clock limit of each DeepLabV3 run, instead of fitting it to "
                             "--budget-minutes (default: fitted)")
    parser.add_argument("--resume", action="store_true",
                        help="continue every run from its last checkpoint where one exists, e.g. after an "
                             "interruption (train.py --resume; default: off, every run starts afresh)")
    parser.add_argument("--tags-data", type=Path, default=None,
                        help="dataset folder whose photos with image-level tags only (annotations/image-level/, no "
                             "pixel-level label) score the best run's garment detection (default: --data)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="train every run once per seed (train.py --seed); the tables add the mean ± standard "
                             "deviation across seeds. Each seed costs the whole study's training again: on 2 CPU "
                             "cores give --budget-minutes room for it (default: one seed, 0)")
    parser.add_argument("--models", default=None,
                        help="comma-separated models to train (default: the profile's, all four)")
    parser.add_argument("--peak-tflops", type=float, default=H200_BF16_DENSE_PEAK_FLOPS / 1e12,
                        help="the GPU's dense bf16 peak for the MFU (default: %(default)g, the H200 SXM "
                             "datasheet's)")
    return parser


def profile_from_args(args: argparse.Namespace) -> StudyProfile:
    profile = PROFILES[args.profile]
    if args.dry_run:
        profile = dry_run_variant(profile)
    overrides = {"epochs": args.epochs, "parallel": args.parallel, "batch_size": args.batch_size,
                 "unet_base_width": args.unet_base_width, "time_limit_minutes": args.time_limit_minutes,
                 "training_budget_seconds": None if args.budget_minutes is None else 60 * args.budget_minutes}
    for name, value in overrides.items():
        if value is not None and value <= 0:
            raise ClothVisionError(f"--{name.replace('_', '-')} {value}: pass a positive number")
    if args.models is not None:
        models = tuple(name.strip() for name in args.models.split(",") if name.strip())
        unknown = [name for name in models if name not in PROFILES["gpu"].models]
        if unknown or not models:
            raise ClothVisionError(f"--models {args.models}: use a comma-separated list of "
                                   f"{', '.join(PROFILES['gpu'].models)}")
        overrides["models"] = models
    if args.precision is not None:
        overrides["precision"] = args.precision
    if args.seeds is not None:
        overrides["seeds"] = tuple(dict.fromkeys(args.seeds))
    return replace(profile, resume=args.resume,
                   **{name: value for name, value in overrides.items() if value is not None})


def check_device(profile: StudyProfile) -> torch.device:
    """Fail at once, before any work, when the profile needs CUDA and there is none."""
    if profile.device == "cuda" and not torch.cuda.is_available():
        raise ClothVisionError(f"the {profile.title} needs a CUDA GPU, but torch {torch.__version__} sees "
                               "none: run it on the GPU machine, or use scripts/cpu_study.sh, or --dry-run")
    return torch.device(profile.device)


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
    runs: list[TrainingRun] = field(default_factory=list)
    training_seconds: float = 0.0
    trained_images: int = 0


def preprocess_step(study: StudyRun, data_dir: Path) -> Cache:
    profile = study.profile
    height, width = profile.image_size
    say(f"preprocessing {data_dir} at {height}x{width} into {profile.cache_dir}")
    started = time.perf_counter()
    # The profile's cache folder is the study's own: it is rebuilt with the profile's size and images.
    preprocess(data_dir, profile.cache_dir, profile.image_size, limit=profile.image_limit, force=True)
    study.preprocess_seconds = time.perf_counter() - started
    cache = load_cache(profile.cache_dir)
    study.image_count = len(cache.meta["ids"])
    study.train_image_count = len(cache.split_indices("train"))
    say(f"preprocessed {study.image_count} images in {study.preprocess_seconds:.1f} s "
        f"({study.image_count / study.preprocess_seconds:.1f} images/s)")
    return cache


def measurement_step(study: StudyRun, cache: Cache) -> list[ModelMeasurement]:
    """Each model measured alone, with the CPU threads each training process will have."""
    if study.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as train.py sets it
    threads = torch.get_num_threads()
    torch.set_num_threads(threads_per_process(study.profile))
    measurements = []
    try:
        for name in study.profile.models:
            measurement = measure_model(name, cache, study.profile, study.device,
                                        study.profile.results_dir / "measurement")
            measurements.append(measurement)
            say(f"{name}: {measurement.describe(study.device, study.peak_flops)}")
    finally:
        torch.set_num_threads(threads)
    return measurements


def training_step(study: StudyRun, measurements: list[ModelMeasurement], cache: Cache) -> list[TrainingRun]:
    """Train every run; returns those that finished."""
    profile = study.profile
    epoch_seconds = {item.name: estimated_epoch_seconds(item.training_images_per_second, study.train_image_count,
                                                        len(cache.split_indices("val"))) for item in measurements}
    seconds_left = profile.training_budget_seconds - (time.monotonic() - study.started)
    study.runs = with_time_limits(planned_runs(profile), profile, seconds_left)
    for run in study.runs:
        limit = f"at most {run.time_limit_minutes:g} min" if run.time_limit_minutes is not None else ""
        say(f"plan: {run.label}: {limit or f'{run.epochs} epoch(s)'} (about "
            f"{epoch_seconds[run.model] / 60:.1f} min per epoch), augment {run.augment}")
    # The last minute of the budget is kept for the figures and the summary.
    deadline = study.started + profile.training_budget_seconds - 60 if profile.stop_at_budget else None
    estimate = sum(run.epochs * epoch_seconds[run.model] for run in study.runs) / profile.parallel
    if deadline is not None and estimate > deadline - time.monotonic():
        say(f"warning: about {estimate / 60:.1f} min of training is more than the "
            f"{(deadline - time.monotonic()) / 60:.1f} min left; runs still training then are stopped "
            "(their curves so far are kept)")
    started = time.perf_counter()
    exit_codes = run_training(profile, study.runs, deadline)
    study.training_seconds = time.perf_counter() - started
    return [run for run in study.runs if exit_codes.get(run.label) == 0]


def recipe_text(study: StudyRun) -> str:
    """How the runs were trained and how the compute was shared, for the summary."""
    profile = study.profile
    precision = resolve_precision(profile.precision, study.device).describe()
    lines = [f"Recipe: from scratch (Adam at 1e-3 for every parameter), --lr-schedule {profile.lr_schedule}, "
             f"--loss {profile.loss}, augment {profile.augment}, {precision}, batch {profile.batch_size}, U-net base "
             f"width {profile.unet_base_width}, early stopping off, seed(s) {', '.join(map(str, profile.seeds))}, "
             f"{profile.parallel} run(s) at a time with {threads_per_process(profile)} thread(s) each on the CPU."
             + (" Runs with a last checkpoint were continued from it (--resume)." if profile.resume else "")]
    if profile.ablations:
        lines.append("Ablations (U-net, one change each against the recipe): "
                     + "; ".join(f"{ablation.label} (`{' '.join(ablation.flags)}`)" for ablation in profile.ablations)
                     + ".")
    limited = [run for run in study.runs if run.time_limit_minutes is not None]
    if limited:
        minutes = [sum(row["seconds"] for row in read_history(run.out_dir / f"{run.model}.csv")) / 60
                   for run in study.runs if (run.out_dir / f"{run.model}.csv").is_file()]
        lines.append(f"Equal compute: every run had the same wall-clock limit of {limited[0].time_limit_minutes:g} "
                     f"min of training (used: {min(minutes, default=0):.1f}–{max(minutes, default=0):.1f} min; a run "
                     "stops after the epoch past which another would end beyond the limit).")
    return "\n".join(lines)


def summary_text(study: StudyRun, finished: list[TrainingRun], measurements: list[ModelMeasurement],
                 reports: dict[str, dict], histories: dict[str, list[dict]]) -> str:
    profile, on_cuda = study.profile, study.device.type == "cuda"
    unfinished = [run.label for run in study.runs if run not in finished]
    measured = {item.name: item.parameters for item in measurements}
    summaries = [model_summary(run.label, histories[run.label], reports[run.label],
                               run_parameters(run, reports[run.label], measured[run.model])) for run in finished]
    return "\n".join([
        f"# {profile.title}", "",
        f"Run {study.started_wall:%Y-%m-%d %H:%M} UTC on {study.hardware}, torch {torch.__version__}: "
        f"`{study.command}`.",
        f"{study.image_count} images at {profile.image_size[0]}×{profile.image_size[1]}, preprocessed in "
        f"{study.preprocess_seconds:.1f} s; training took {study.training_seconds / 60:.1f} min "
        f"({study.trained_images / study.training_seconds:.1f} training images/s over all runs), the whole "
        f"study {(time.monotonic() - study.started) / 60:.1f} min.",
        recipe_text(study),
        *([f"**Not finished** (failed, or stopped at the time budget): {', '.join(unfinished)}; see logs/."]
          if unfinished else []),
        "", summary_markdown(summaries), "",
        "## Training throughput (each model alone, before the runs)", "",
        f"The trainer's train_one_epoch over {profile.measurement_steps} batches of {profile.batch_size} "
        "after a warm-up epoch. FLOPs: FlopCounterMode on one image's forward pass, × 3 for forward + "
        "backward"
        + (f"; MFU against {study.peak_flops / 1e12:g} TFLOP/s, the H200 SXM datasheet's dense bf16 peak."
           if on_cuda else "."), "",
        throughput_table(measurements, study.device, study.peak_flops), "",
        "## For the README", "",
        "Test metrics of each run's best checkpoint (highest val mIoU); ms / image: batch of one, "
        f"{resolve_precision(profile.precision, study.device).describe()}, median of 5.", "",
        readme_table(study.runs, measurements, reports, histories), "",
    ])


def best_run_step(study: StudyRun, data_dir: Path, tags_dir: Path, finished: list[TrainingRun],
                  reports: dict[str, dict]) -> str:
    """The flip-TTA gain and the garment-detection scores of the best run, as JSON and as the summary's text."""
    best = best_run(finished, reports)
    say(f"best run: {best.label}: flip test-time augmentation against none, garment detection on tags")
    gain = flip_tta_gain(best, study.profile)
    tags = tag_scores(best, study.profile, data_dir, tags_dir)
    atomic_write_text(study.profile.results_dir / "best_run.json",
                      json.dumps({"run": best.label, "flip_tta": gain, "tags": tags}, indent=1) + "\n")
    return best_run_text(best, gain, tags)


def report_step(study: StudyRun, data_dir: Path, tags_dir: Path, finished: list[TrainingRun],
                measurements: list[ModelMeasurement]) -> None:
    profile = study.profile
    histories = {run.label: read_history(run.out_dir / f"{run.model}.csv") for run in study.runs
                 if (run.out_dir / f"{run.model}.csv").is_file()}
    # Epochs each run completed × the train split (train batches drop their remainder).
    train_images = study.train_image_count // profile.batch_size * profile.batch_size
    study.trained_images = sum(len(history) for history in histories.values()) * train_images
    reports = {run.label: json.loads((run.out_dir / f"{run.model}_test.json").read_text(encoding="utf-8"))
               for run in finished}
    if histories:
        plot_comparison(histories, profile.figure_path, against_minutes=profile.equal_time)
    prediction_figures = write_prediction_figures(profile, data_dir, finished)
    summary = summary_text(study, finished, measurements, reports, histories)
    if reports:
        summary += "\n" + best_run_step(study, data_dir, tags_dir, finished, reports)
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
    study = StudyRun(profile, device, hardware, args.peak_tflops * 1e12, command, started, started_wall)
    say(f"{profile.title}: {hardware}, torch {torch.__version__}")
    cache = preprocess_step(study, args.data)
    measurements = measurement_step(study, cache)
    finished = training_step(study, measurements, cache)
    report_step(study, args.data, args.tags_data or args.data, finished, measurements)
    if len(finished) != len(study.runs):
        raise ClothVisionError(f"{len(study.runs) - len(finished)} run(s) did not finish: read "
                               f"{profile.results_dir / 'logs'}, then rerun with fewer --epochs")


if __name__ == "__main__":
    sys.exit(run_cli(main))
