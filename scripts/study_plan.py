"""What a reference study trains: its profiles (one H200, or 2 CPU cores) and the training runs they plan.

Every run trains from scratch with the project's recipe (train.py's from-scratch learning rates, schedule,
loss, --augment and --precision as the profile says, early stopping off). The GPU profile gives every model
the same epochs under one deadline. The CPU profile compares at equal compute: every run, each of the four
models and each ablation of the U-net's recipe (schedule, loss, width, augmentation), gets the same
wall-clock limit, the budget shared out over the rounds of `parallel` runs. With several seeds every run is
repeated per seed.
"""

import math
from dataclasses import dataclass, replace
from pathlib import Path

from models import MODEL_NAMES

# Forward cost of a validation image relative to a training image's forward + backward.
EVALUATION_COST_PER_TRAINING_IMAGE = 1 / 3
# Kept out of the CPU budget for what follows the time limits: the flip-TTA evaluation and the tag scoring of
# the best run, figures and summary; and, per round of runs, their test evaluations at the labels' own size.
REPORT_RESERVE_SECONDS = 600
TEST_EVALUATION_SECONDS = 90


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
    epochs: int  # of every run without a time limit
    equal_time: bool  # every run gets the same wall-clock limit, fitted to the budget
    time_limited_max_epochs: int  # the epoch cap of a time-limited run
    augment: str
    lr_schedule: str
    loss: str
    # U-net runs that change one thing of the recipe, each at the same compute as the recipe's own.
    ablations: tuple["Ablation", ...]
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
    # Every run is trained once per seed (train.py --seed); the tables show the spread across seeds.
    seeds: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class Ablation:
    """A U-net run that differs from the recipe by the train.py flags given."""

    label: str  # what it changes, e.g. "schedule plateau"
    flags: tuple[str, ...]

    @property
    def folder(self) -> str:
        return "ablation-" + "-".join(self.label.split())


# Against the recipe the last CPU study chose (plateau, width 16): each change it measured, one at a time.
CPU_ABLATIONS = (
    Ablation("schedule poly", ("--lr-schedule", "poly")),
    Ablation("loss ce+jaccard", ("--loss", "ce+jaccard")),
    Ablation("base width 24", ("--unet-base-width", "24")),
    Ablation("base width 32", ("--unet-base-width", "32")),
)


GPU_PROFILE = StudyProfile(
    "gpu", "GPU study (one NVIDIA H200)", "cuda", (496, 304), MODEL_NAMES, unet_base_width=70,
    batch_size=8, epochs=30, equal_time=False, time_limited_max_epochs=30, augment="flip", lr_schedule="plateau",
    loss="ce", ablations=(), precision="auto", training_budget_seconds=9 * 60, stop_at_budget=True, parallel=4,
    image_limit=None, measurement_steps=10, cache_dir=Path("data/processed"), results_dir=Path("results"),
    figure_path=Path("readme_imgs/graph.png"),
)
CPU_PROFILE = StudyProfile(
    "cpu", "CPU study (2 cores, 240×144)", "cpu", (240, 144), MODEL_NAMES, unet_base_width=16,
    batch_size=8, epochs=25, equal_time=True, time_limited_max_epochs=200, augment="flip", lr_schedule="plateau",
    loss="ce", ablations=CPU_ABLATIONS, precision="auto", training_budget_seconds=120 * 60, stop_at_budget=False,
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
    # train.py flags after the recipe's, which they override (an ablation's change).
    flags: tuple[str, ...] = ()
    seed: int = 0
    # The label without the seed: runs that differ only by seed share it, and the tables average them.
    base_label: str = ""

    @property
    def slug(self) -> str:
        """The label as a file name: 'unet, schedule plateau' -> 'unet-schedule-plateau'."""
        return "-".join(self.label.replace(",", " ").split())


def planned_runs(profile: StudyProfile) -> list[TrainingRun]:
    """Every run of the profile, per seed, without time limits yet (see with_time_limits)."""
    epochs = profile.time_limited_max_epochs if profile.equal_time else profile.epochs
    runs = []
    for seed in profile.seeds:
        root = profile.results_dir if seed == profile.seeds[0] else profile.results_dir / f"seed-{seed}"
        # The first seed's runs keep the plain labels (and folders), as with a single seed.
        suffix = f", seed {seed}" if seed != profile.seeds[0] else ""
        for name in profile.models:
            runs.append(TrainingRun(name + suffix, name, root, profile.augment, epochs, seed=seed, base_label=name))
            if name == "unet":
                runs += [TrainingRun(f"unet, {ablation.label}{suffix}", "unet", root / ablation.folder,
                                     profile.augment, epochs, flags=ablation.flags, seed=seed,
                                     base_label=f"unet, {ablation.label}") for ablation in profile.ablations]
    return runs


def with_time_limits(runs: list[TrainingRun], profile: StudyProfile, seconds_left: float) -> list[TrainingRun]:
    """With equal_time, every run with the same limit: the profile's time_limit_minutes, or seconds_left (less
    what the reports need) shared out over the rounds of `parallel` runs."""
    if not profile.equal_time:
        return runs
    if profile.time_limit_minutes is not None:
        return [replace(run, time_limit_minutes=profile.time_limit_minutes) for run in runs]
    rounds = max(1, math.ceil(len(runs) / profile.parallel))
    limit_seconds = max(60.0, (seconds_left - REPORT_RESERVE_SECONDS) / rounds - TEST_EVALUATION_SECONDS)
    return [replace(run, time_limit_minutes=round(limit_seconds / 60, 1)) for run in runs]


def estimated_epoch_seconds(training_images_per_second: float, train_images: int, val_images: int) -> float:
    """An epoch's training plus its validation pass, at the measured training throughput."""
    return (train_images + EVALUATION_COST_PER_TRAINING_IMAGE * val_images) / training_images_per_second
