"""What a reference study trains: its profiles (one H200, or 2 CPU cores) and the training runs they plan.

Every run trains from scratch with the project's recipe (train.py's from-scratch learning rates, --augment
and --precision as the profile says, early stopping off). The GPU profile gives every model the same epochs
under one deadline. The CPU profile compares at equal compute: each DeepLabV3 gets the same wall-clock
limit, the budget left once the U-net runs (its recipe and the augmentation ablation) have their fixed
epochs; when those epochs take more than an equal share, the U-net has the larger share and the summary
says so.
"""

import math
from dataclasses import dataclass, replace
from pathlib import Path

from models import MODEL_NAMES

# Forward cost of a validation image relative to a training image's forward + backward.
EVALUATION_COST_PER_TRAINING_IMAGE = 1 / 3
# Kept out of the CPU budget for what follows training: each run's test evaluation, figures, summary.
REPORT_RESERVE_SECONDS = 240


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
    epochs: int  # of every run; with equal_time, of the U-net runs only
    equal_time: bool  # the other models share the budget left after the U-net runs, as equal time limits
    time_limited_max_epochs: int  # the epoch cap of a time-limited run
    augment: str
    ablation_augment: str | None  # a second U-net run with this --augment, for the same epochs
    precision: str
    training_budget_seconds: float
    stop_at_budget: bool  # True: training still running when the budget ends is stopped
    parallel: int
    image_limit: int | None
    measurement_steps: int
    cache_dir: Path
    results_dir: Path
    figure_path: Path
    # The equal-time runs' limit in minutes; None: fitted to the budget (with_time_limits).
    time_limit_minutes: float | None = None
    # Continue each run from its last checkpoint where one exists (train.py --resume).
    resume: bool = False


GPU_PROFILE = StudyProfile(
    "gpu", "GPU study (one NVIDIA H200)", "cuda", (496, 304), MODEL_NAMES, unet_base_width=70,
    batch_size=8, epochs=30, equal_time=False, time_limited_max_epochs=30, augment="flip",
    ablation_augment=None, precision="auto", training_budget_seconds=9 * 60, stop_at_budget=True, parallel=4,
    image_limit=None, measurement_steps=10, cache_dir=Path("data/processed"), results_dir=Path("results"),
    figure_path=Path("readme_imgs/graph.png"),
)
CPU_PROFILE = StudyProfile(
    "cpu", "CPU study (2 cores, 240×144)", "cpu", (240, 144), MODEL_NAMES, unet_base_width=32,
    batch_size=8, epochs=25, equal_time=True, time_limited_max_epochs=200, augment="full",
    ablation_augment="flip", precision="auto", training_budget_seconds=120 * 60, stop_at_budget=False,
    parallel=2, image_limit=None, measurement_steps=3, cache_dir=Path("data/processed_240x144"),
    results_dir=Path("results/cpu"), figure_path=Path("readme_imgs/graph_cpu.png"),
)
PROFILES = {profile.name: profile for profile in (GPU_PROFILE, CPU_PROFILE)}


def dry_run_variant(profile: StudyProfile) -> StudyProfile:
    """The same steps at toy size on the CPU, 1 epoch, written under results/dry-run-<profile>.

    No deadline stops its training: it proves that the steps fit together, on however slow a machine."""
    folder = Path(f"results/dry-run-{profile.name}")
    return replace(profile, title=f"DRY RUN of the {profile.title}: toy sizes on the CPU, no real numbers",
                   device="cpu", image_size=(48, 32), unet_base_width=8, batch_size=2, epochs=1,
                   time_limited_max_epochs=1, stop_at_budget=False, parallel=min(profile.parallel, 2),
                   image_limit=16, measurement_steps=2, cache_dir=folder / "cache", results_dir=folder,
                   figure_path=folder / "graph.png")


@dataclass(frozen=True)
class TrainingRun:
    """One train.py process of a study."""

    label: str  # as tables and figures name it
    model: str
    out_dir: Path
    augment: str
    epochs: int
    time_limit_minutes: float | None = None

    @property
    def slug(self) -> str:
        """The label as a file name: 'unet, augment flip' -> 'unet-augment-flip'."""
        return "-".join(self.label.replace(",", " ").split())


def planned_runs(profile: StudyProfile) -> list[TrainingRun]:
    """Every run of the profile, U-net runs first, without time limits yet (see with_time_limits)."""
    runs = []
    for name in profile.models:
        epochs = profile.epochs if name == "unet" or not profile.equal_time else profile.time_limited_max_epochs
        runs.append(TrainingRun(name, name, profile.results_dir, profile.augment, epochs))
        if name == "unet" and profile.ablation_augment is not None:
            augment = profile.ablation_augment
            runs.append(TrainingRun(f"unet, augment {augment}", "unet", profile.results_dir / f"augment-{augment}",
                                    augment, profile.epochs))
    return sorted(runs, key=lambda run: run.model != "unet")


def with_time_limits(runs: list[TrainingRun], profile: StudyProfile, epoch_seconds: dict[str, float],
                     seconds_left: float) -> list[TrainingRun]:
    """The equal-time runs (all but the U-net's) with the same limit: the profile's time_limit_minutes, or
    what seconds_left leaves after the U-net runs' epochs (at epoch_seconds per epoch, `parallel` runs at a
    time), per round of runs."""
    if not profile.equal_time:
        return runs
    fixed = [run for run in runs if run.model == "unet"]
    limited = [run for run in runs if run.model != "unet"]
    if profile.time_limit_minutes is not None:
        return fixed + [replace(run, time_limit_minutes=profile.time_limit_minutes) for run in limited]
    fixed_seconds = sum(profile.epochs * epoch_seconds["unet"] for _ in fixed) / profile.parallel
    rounds = max(1, math.ceil(len(limited) / profile.parallel))
    limit_seconds = max(60.0, (seconds_left - REPORT_RESERVE_SECONDS - fixed_seconds) / rounds)
    return fixed + [replace(run, time_limit_minutes=round(limit_seconds / 60, 1)) for run in limited]


def estimated_epoch_seconds(training_images_per_second: float, train_images: int, val_images: int) -> float:
    """An epoch's training plus its validation pass, at the measured training throughput."""
    return (train_images + EVALUATION_COST_PER_TRAINING_IMAGE * val_images) / training_images_per_second
