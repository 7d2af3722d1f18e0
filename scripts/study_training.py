"""A study's training: one train.py process per run, up to `parallel` at a time, each logging to a file."""

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from scripts.study_plan import StudyProfile, TrainingRun

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


def say(message: str) -> None:
    print(f"[study {time.strftime('%H:%M:%S')}] {message}", flush=True)


def training_command(run: TrainingRun, profile: StudyProfile) -> list[str]:
    """train.py from scratch (its from-scratch learning rates) with the profile's recipe and early stopping
    off (patience above the epoch count never ends a run before its last epoch or its time limit); an
    ablation's flags come last, so they override the recipe's."""
    command = [sys.executable, "train.py", "--model", run.model, "--data", str(profile.cache_dir),
               "--out", str(run.out_dir), "--epochs", str(run.epochs), "--batch-size", str(profile.batch_size),
               "--device", profile.device, "--patience", str(run.epochs + 1), "--seed", str(run.seed),
               "--unet-base-width", str(profile.unet_base_width), "--precision", profile.precision,
               "--augment", run.augment, "--lr-schedule", profile.lr_schedule, "--loss", profile.loss]
    if run.time_limit_minutes is not None:
        command += ["--time-limit-minutes", f"{run.time_limit_minutes:g}"]
    if profile.resume and (run.out_dir / f"{run.model}_last.pt").is_file():
        command.append("--resume")
    return command + [*run.flags, "--no-pretrained", "--no-show", "--no-progress"]


def threads_per_process(profile: StudyProfile) -> int:
    return max(1, (os.cpu_count() or 1) // profile.parallel)


def run_training(profile: StudyProfile, runs: list[TrainingRun], deadline: float | None) -> dict[str, int | None]:
    """Start each run's train.py, at most profile.parallel at a time, in order.

    Returns each run's exit code by label; None for a run stopped at the deadline (its last finished
    epoch's files stay). Logs go to <results>/logs/<run slug>.log.
    """
    log_dir = profile.results_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    environment = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1",
                       OMP_NUM_THREADS=str(threads_per_process(profile)))
    waiting, running, exit_codes = list(runs), {}, {}
    while waiting or running:
        while waiting and len(running) < profile.parallel:
            run = waiting.pop(0)
            command = training_command(run, profile)
            say(f"training {run.label}: {' '.join(command[1:])}")
            with open(log_dir / f"{run.slug}.log", "w", encoding="utf-8") as log:
                running[run.label] = subprocess.Popen(command, cwd=REPOSITORY_ROOT, env=environment, stdout=log,
                                                      stderr=subprocess.STDOUT)
        for label, process in list(running.items()):
            if process.poll() is not None:
                exit_codes[label] = process.returncode
                say(f"{label} finished with exit code {process.returncode}")
                del running[label]
        if deadline is not None and time.monotonic() > deadline:
            for label, process in running.items():
                say(f"{label} is still training at the deadline: stopping it")
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=30)
                process.kill()
                exit_codes[label] = None
            exit_codes.update({run.label: None for run in waiting})
            break
        time.sleep(1)
    return exit_codes
