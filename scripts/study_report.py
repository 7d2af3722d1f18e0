"""A study's report once its runs ended: summary.md (machine, date, command, scripts/results_table.py's tables,
throughput, the run chosen on val), the comparison figure, a prediction figure per recipe and, when the
environment variable OUT names a folder, a copy of summary, figure and every output but the checkpoints."""

import contextlib
import io
import json
import os
import shutil
import tarfile
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from benchmarks.flops import FORWARD_AND_BACKWARD_PER_FORWARD, H200_BF16_DENSE_PEAK_FLOPS, forward_flops_per_image
from dataset import load_cache
from helpers.atomic_files import atomic_write_text
from img_test import test_split_image, test_with_image
from models import get_model
from scripts.results_table import Run, chosen_on_val, results_table, runs_by_recipe
from scripts.study_best import best_run_text, flip_tta_gain_on_val, tag_scores
from trainers.plots import plot_comparison

if TYPE_CHECKING:  # scripts.study imports this module
    from scripts.study import Study


def throughput_table(by_recipe: dict[str, list[Run]], image_size: tuple[int, int], train_images: int,
                     on_cuda: bool) -> str:
    """Per recipe (its first seed): forward FLOPs per image, training images per second over the run's epochs
    (validation included) and, on CUDA, the model FLOPs utilisation against the H200's dense bf16 peak."""
    lines = ["| recipe | forward GFLOP / image | training images/s | MFU |", "|---|---:|---:|---:|"]
    for recipe, runs in by_recipe.items():
        run = runs[0]
        config = json.loads((run.folder / f"{run.model}_config.json").read_text(encoding="utf-8"))
        model = get_model(run.model, len(run.report["per_class_iou"]), **config["model_kwargs"])
        flops = forward_flops_per_image(model, image_size)
        batch = run.options["batch_size"]
        per_second = len(run.history) * (train_images // batch * batch) / sum(row["seconds"] for row in run.history)
        utilisation = FORWARD_AND_BACKWARD_PER_FORWARD * flops * per_second / H200_BF16_DENSE_PEAK_FLOPS
        lines.append(f"| {recipe} | {flops / 1e9:.2f} | {per_second:.1f} | "
                     f"{f'{100 * utilisation:.1f} %' if on_cuda else '–'} |")
    return "\n".join(lines)


def prediction_figures(study: "Study", data_dir: Path, by_recipe: dict[str, list[Run]]) -> list[Path]:
    """Original | Label | Prediction on the first test photo, for each recipe's first seed."""
    figures = []
    for recipe, runs in by_recipe.items():
        checkpoint, path = runs[0].folder / f"{runs[0].model}.pt", study.results / f"prediction_{recipe}.png"
        with contextlib.redirect_stdout(io.StringIO()):
            test_with_image(test_split_image(checkpoint, 0, data_dir), checkpoint, show=False, save_to=path,
                            device=study.device)
        figures.append(path)
    return figures


def write_report(study: "Study", data_dir: Path, tags_dir: Path, command: str, started: datetime) -> Path:
    hardware = torch.cuda.get_device_name() if study.device == "cuda" else f"{os.cpu_count()} CPU cores"
    cache = load_cache(study.cache)
    lines = [f"# {study.title}", "",
             f"Run {started:%Y-%m-%d %H:%M} UTC on {hardware}, torch {torch.__version__}: `{command}`. "
             f"{len(cache.meta['ids'])} images at {study.image_size[0]}×{study.image_size[1]}; recipes "
             f"{', '.join(study.recipes)}, seeds {', '.join(map(str, study.seeds))}, {study.parallel} run(s) at a time"
             + (f", every run limited to {study.time_limit_minutes:g} training minutes" if study.time_limit_minutes
                else "") + ".", ""]
    figures = []
    if any(study.results.glob("*/seed-*/*_test.json")):
        by_recipe = runs_by_recipe(study.results)
        plot_comparison({recipe: runs[0].history for recipe, runs in by_recipe.items()}, study.figure,
                        against_minutes=study.time_limit_minutes is not None)
        chosen = max(by_recipe[chosen_on_val(by_recipe)], key=lambda run: run.val_miou)
        lines += [results_table(study.results, baseline=study.recipes[0]),
                  "## Throughput (each recipe's first seed)", "",
                  throughput_table(by_recipe, study.image_size, len(cache.split_indices("train")),
                                   study.device == "cuda"), "",
                  best_run_text(chosen, flip_tta_gain_on_val(chosen, study.cache, study.device),
                                tag_scores(chosen, study.device, data_dir, tags_dir, study.image_limit))]
        figures = [study.figure, *prediction_figures(study, data_dir, by_recipe)]
    else:
        lines.append("No run finished: read the logs.")
    summary = atomic_write_text(study.results / "summary.md", "\n".join(lines))
    print(summary.read_text(encoding="utf-8"), flush=True)
    if os.environ.get("OUT"):
        export(study.results, Path(os.environ["OUT"]), [summary, *figures])
    return summary


def export(results: Path, out_dir: Path, files: list[Path]) -> None:
    """Copy summary and figure to out_dir, and every output of the study except checkpoints as results.tar.gz."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in files[:2]:
        shutil.copy2(path, out_dir / path.name)
    written = [path for path in results.rglob("*") if path.is_file() and path.suffix != ".pt"
               and "cache" not in path.relative_to(results).parts]
    with tarfile.open(out_dir / "results.tar.gz", "w:gz") as archive:
        for path in sorted({*written, *files[2:]}):
            archive.add(path, arcname=str(path))
