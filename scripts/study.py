"""A study: recipes × seeds under one time limit, one train.py process per run, then its tables.

    python -m scripts.study recipes/studies/cpu.json [--data DIR] [--seeds 0 1 2] [--resume] [...]
    scripts/cpu_study.sh, scripts/gpu_study.sh      the two studies of recipes/studies/
    DRY_RUN=1 scripts/gpu_study.sh                  the same steps at toy size on the CPU, 3 seeds, 1 epoch

A study file names its recipes (recipes/<name>.json, read by `train.py --config`), its seeds, its image size,
cache and results folder, how many runs train at once, and either an equal time limit per run
(time_limit_minutes) or a deadline for the whole training (deadline_minutes). The launcher preprocesses the
data, runs one round per seed (every recipe at that seed) with `parallel` train.py processes at a time, each
as `train.py --config RECIPE --data CACHE --out <results>/<recipe>/seed-<n> --seed N`, then writes summary.md
with scripts/results_table.py's tables (val chooses, test reports, seeded verdicts), the comparison figure, a
prediction figure per recipe and what scripts/study_best.py measures on the run chosen on val.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import torch

from evaluation.bootstrap import MIN_SEEDS
from helpers.errors import ClothVisionError, run_cli
from preprocess import preprocess
from scripts.study_report import write_report

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
RECIPES = REPOSITORY_ROOT / "recipes"
# A dry run's toy size: enough to go through every step, too little to mean anything.
DRY_RUN_FLAGS = ("--epochs", "1", "--batch-size", "2", "--unet-base-width", "8")


@dataclass(frozen=True)
class Study:
    """What a study file says (recipes/studies/*.json)."""

    title: str
    device: str
    image_size: tuple[int, int]
    cache: Path
    results: Path
    figure: Path
    recipes: tuple[str, ...]
    seeds: tuple[int, ...]
    parallel: int
    time_limit_minutes: float | None = None
    deadline_minutes: float | None = None
    image_limit: int | None = None
    extra_flags: tuple[str, ...] = ()

    def run_folder(self, recipe: str, seed: int) -> Path:
        return self.results / recipe / f"seed-{seed}"


def read_study(path: Path) -> Study:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        study = Study(**{**content, "image_size": tuple(content["image_size"]), "recipes": tuple(content["recipes"]),
                         "seeds": tuple(content["seeds"]),
                         **{key: Path(content[key]) for key in ("cache", "results", "figure")}})
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ClothVisionError(f"study {path} cannot be read ({type(error).__name__}: {error}): pass a study file "
                               "like recipes/studies/cpu.json") from None
    missing = [recipe for recipe in study.recipes if not (RECIPES / f"{recipe}.json").is_file()]
    if missing:
        raise ClothVisionError(f"study {path} names recipes that recipes/ lacks ({', '.join(missing)}): add "
                               "recipes/<name>.json or remove the name")
    return study


def dry_run_variant(study: Study, name: str) -> Study:
    """The same recipes at toy size on the CPU, 1 epoch, at least MIN_SEEDS seeds, no deadline (however slow
    the machine), under results/dry-run-<name>."""
    folder = Path(f"results/dry-run-{name}")
    return replace(study, title=f"DRY RUN of the {study.title}: toy sizes on the CPU, no real numbers", device="cpu",
                   image_size=(48, 32), cache=folder / "cache", results=folder, figure=folder / "graph.png",
                   seeds=tuple(range(max(MIN_SEEDS, len(study.seeds)))), parallel=min(study.parallel, 2),
                   deadline_minutes=None, image_limit=16, extra_flags=DRY_RUN_FLAGS,
                   time_limit_minutes=None if study.time_limit_minutes is None else 0.5)


def training_command(study: Study, recipe: str, seed: int, resume: bool) -> list[str]:
    """train.py with the recipe as --config; the study adds only where, which seed and for how long."""
    out = study.run_folder(recipe, seed)
    command = [sys.executable, "train.py", "--config", str(RECIPES / f"{recipe}.json"), "--data", str(study.cache),
               "--out", str(out), "--seed", str(seed), "--device", study.device, "--no-show", "--no-progress",
               *study.extra_flags]
    if study.time_limit_minutes is not None:
        command += ["--time-limit-minutes", f"{study.time_limit_minutes:g}"]
    if resume and any(out.glob("*_last.pt")):
        command.append("--resume")
    return command


def say(message: str) -> None:
    print(f"[study {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_training(commands: dict[str, list[str]], parallel: int, log_dir: Path,
                 should_stop: Callable[[dict[str, int | None]], bool]) -> dict[str, int | None]:
    """Start the commands in order, at most `parallel` at a time, each logging to <log_dir>/<label>.log.

    Returns each label's exit code; None for a run stopped because should_stop(the exit codes so far) said so
    (its last finished epoch's files stay) or never started."""
    log_dir.mkdir(parents=True, exist_ok=True)
    environment = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1",
                       OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // parallel)))
    waiting, running, exit_codes = list(commands), {}, {}
    while waiting or running:
        while waiting and len(running) < parallel:
            label = waiting.pop(0)
            say(f"training {label}: {' '.join(commands[label][1:])}")
            with open(log_dir / f"{label.replace('/', '-')}.log", "w", encoding="utf-8") as log:
                running[label] = subprocess.Popen(commands[label], cwd=REPOSITORY_ROOT, env=environment, stdout=log,
                                                  stderr=subprocess.STDOUT)
        for label, process in list(running.items()):
            if process.poll() is not None:
                exit_codes[label] = running.pop(label).returncode
                say(f"{label} finished with exit code {process.returncode}")
        if should_stop(exit_codes):
            for label, process in running.items():
                say(f"{label} is still training at the deadline: stopping it")
                process.terminate()
                process.wait()
            return {**exit_codes, **dict.fromkeys([*running, *waiting])}
        time.sleep(0.2)
    return exit_codes


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Run a study: recipes × seeds, then its tables (see "
                                                 "recipes/studies/).")
    parser.add_argument("study", type=Path, help="a study file, e.g. recipes/studies/cpu.json")
    parser.add_argument("--data", type=Path, default=Path("data"),
                        help="dataset folder (original CCP or Kaggle layout) (default: %(default)s)")
    parser.add_argument("--tags-data", type=Path, default=None,
                        help="dataset folder whose photos with image-level tags only score the chosen run's garment "
                             "detection (default: --data)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help=f"seeds of every recipe; a verdict needs {MIN_SEEDS} (default: the study file's)")
    parser.add_argument("--time-limit-minutes", type=float, default=None,
                        help="training minutes of every run (default: the study file's)")
    parser.add_argument("--resume", action="store_true",
                        help="continue every run that has a last checkpoint (train.py --resume) (default: off)")
    parser.add_argument("--dry-run", action="store_true", default=os.environ.get("DRY_RUN") == "1",
                        help="every step at toy size on the CPU, 1 epoch, 3 seeds, into results/dry-run-<study> "
                             "(default: off, on when the environment variable DRY_RUN is 1)")
    return parser


def study_from_args(args: argparse.Namespace) -> Study:
    study = read_study(args.study)
    if args.seeds is not None:
        study = replace(study, seeds=tuple(dict.fromkeys(args.seeds)))
    if args.time_limit_minutes is not None:
        if args.time_limit_minutes <= 0:
            raise ClothVisionError(f"--time-limit-minutes {args.time_limit_minutes:g}: pass a positive number")
        study = replace(study, time_limit_minutes=args.time_limit_minutes)
    return dry_run_variant(study, args.study.stem) if args.dry_run else study


def main(argv: list[str] | None = None) -> None:
    started_wall, started = datetime.now(timezone.utc), time.monotonic()
    args = get_args_parser().parse_args(argv)
    study = study_from_args(args)
    if study.device == "cuda" and not torch.cuda.is_available():
        raise ClothVisionError(f"the {study.title} needs a CUDA GPU, but torch {torch.__version__} sees none: run "
                               "it on the GPU machine, or use scripts/cpu_study.sh, or --dry-run")
    say(f"{study.title}: preprocessing {args.data} at {study.image_size[0]}x{study.image_size[1]} into {study.cache}")
    # The study's cache folder is its own: rebuilt at the study's size and images whatever was there.
    preprocess(args.data, study.cache, study.image_size, limit=study.image_limit, force=True)
    # One round per seed: an interrupted study has whole seeds of every recipe.
    commands = {f"{recipe}/seed-{seed}": training_command(study, recipe, seed, args.resume)
                for seed in study.seeds for recipe in study.recipes}
    deadline = None if study.deadline_minutes is None else started + 60 * study.deadline_minutes
    exit_codes = run_training(commands, study.parallel, study.results / "logs",
                              lambda _: deadline is not None and time.monotonic() > deadline)
    command = " ".join(["python -m scripts.study", *(argv if argv is not None else sys.argv[1:])])
    write_report(study, args.data, args.tags_data or args.data, command, started_wall)
    failed = [label for label, code in exit_codes.items() if code != 0]
    if failed:
        raise ClothVisionError(f"{len(failed)} run(s) did not finish ({', '.join(failed)}): read "
                               f"{study.results / 'logs'}, then rerun with --resume")


if __name__ == "__main__":
    sys.exit(run_cli(main))
