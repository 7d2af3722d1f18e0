"""A study's tables from its results folder alone. Val chooses, test reports.

    python -m scripts.results_table results/cpu

A study writes each run, one recipe at one seed, into <results>/<recipe>/seed-<n>/ (train.py --out). The tables:
every run with its training minutes used of those allowed (the history's per-epoch seconds, validation
included, against the run's --time-limit-minutes) and its final learning rate (from <model>_last.pt); every
recipe's mean ± standard deviation over its seeds of val and test mIoU; the recipe chosen on val (highest
mean val mIoU over its seeds; each run's checkpoint is its epoch of highest val mIoU); and the chosen recipe
against each other one on test, with an interval over seeds and test photos and a verdict only with 3 seeds
each (evaluation/bootstrap.py). Test numbers are reported, never used to choose.

With a baseline recipe (--baseline, the study's first), every other recipe is also compared with it on val,
the split that chooses: what a screening keeps or drops. Each run's checkpoint is scored on val at the
annotations' own size once, as `train.py --evaluate <checkpoint> --split val` writes it beside the checkpoint.
"""

import argparse
import csv
import json
import math
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from evaluation.bootstrap import (
    MIN_SEEDS,
    format_with_interval,
    image_statistics,
    seeded_paired_difference,
    verdict,
)
from evaluation.garment_groups import garment_groups_for
from helpers.checkpoint import load_checkpoint
from helpers.errors import ClothVisionError, run_cli
from trainers.evaluate_command import default_report_path
from trainers.evaluation import evaluate_checkpoint
from trainers.metrics import group_metrics, metrics_from_confusion
from trainers.report import images_path, read_image_confusion, write_test_report


def read_history(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [{key: int(value) if key == "epoch" else float(value) for key, value in row.items()}
                for row in csv.DictReader(handle)]


@dataclass(frozen=True)
class Run:
    """One recipe trained at one seed: what train.py left in its --out folder."""

    recipe: str
    seed: int
    folder: Path
    model: str
    report: dict
    history: list[dict]
    options: dict

    @property
    def val_miou(self) -> float:
        """The val mIoU of the run's checkpoint: its best epoch by val mIoU."""
        return max(row["val_miou"] for row in self.history)

    @property
    def group_miou(self) -> float:
        return self.report["garment_groups"]["miou"]

    def minutes(self) -> str:
        """'17.6 / 18' training minutes used of those allowed ('/ –' without a time limit)."""
        used = sum(row["seconds"] for row in self.history) / 60
        allowed = self.options.get("time_limit_minutes", math.inf)
        return f"{used:.1f} / {'–' if math.isinf(allowed) else f'{allowed:g}'}"

    def final_rate(self) -> str:
        """The last epoch's highest learning rate and its share of the starting rate: '1e-05 (0.01×)'."""
        last = self.folder / f"{self.model}_last.pt"
        if not last.is_file():
            return "–"
        rate = max(group["lr"] for group in load_checkpoint(last, mmap=True)["optimizer"]["param_groups"])
        return f"{rate:.2g} ({rate / self.options['lr']:.2f}×)"


def read_run(report_path: Path) -> Run:
    folder, model = report_path.parent, report_path.name.removesuffix("_test.json")
    try:
        config = json.loads((folder / f"{model}_config.json").read_text(encoding="utf-8"))
        return Run(folder.parent.name, int(folder.name.removeprefix("seed-")), folder, model,
                   json.loads(report_path.read_text(encoding="utf-8")), read_history(folder / f"{model}.csv"),
                   config["options"])
    except (OSError, ValueError, KeyError) as error:
        raise ClothVisionError(f"{folder} is not a finished train.py run ({type(error).__name__}: {error}): "
                               "rerun that recipe and seed, or remove the folder") from None


def runs_by_recipe(results_dir: Path) -> dict[str, list[Run]]:
    """{recipe: its runs by seed} of every <recipe>/seed-<n>/<model>_test.json in results_dir."""
    by_recipe: dict[str, list[Run]] = {}
    for run in sorted(map(read_run, results_dir.glob("*/seed-*/*_test.json")), key=lambda run: (run.recipe, run.seed)):
        by_recipe.setdefault(run.recipe, []).append(run)
    if not by_recipe:
        raise ClothVisionError(f"{results_dir} holds no <recipe>/seed-<n>/<model>_test.json: pass the results "
                               "folder of a study (scripts/study.py)")
    return by_recipe


def chosen_on_val(by_recipe: dict[str, list[Run]]) -> str:
    """The recipe of highest mean val mIoU over its seeds."""
    return max(by_recipe, key=lambda recipe: statistics.mean(run.val_miou for run in by_recipe[recipe]))


def spread(values: list[float]) -> str:
    """'5.3 ± 0.2 %': mean ± standard deviation over seeds, as percentages ('5.3 %' for one seed)."""
    if len(values) < 2:
        return f"{100 * values[0]:.1f} %"
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f} %"


def runs_table(by_recipe: dict[str, list[Run]]) -> str:
    lines = ["| recipe | seed | epochs | training minutes (used / allowed) | final rate (× start) | best val mIoU "
             "| test pixel accuracy | test mIoU | test group mIoU |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for runs in by_recipe.values():
        for run in runs:
            intervals = run.report["intervals"]
            lines.append(f"| {run.recipe} | {run.seed} | {len(run.history)} | {run.minutes()} | {run.final_rate()} "
                         f"| {100 * run.val_miou:.1f} % "
                         f"| {format_with_interval(run.report['pixel_accuracy'], intervals['pixel_accuracy'])} "
                         f"| {format_with_interval(run.report['miou'], intervals['miou'])} "
                         f"| {format_with_interval(run.group_miou, intervals['group_miou'])} |")
    return "\n".join(lines)


def recipes_table(by_recipe: dict[str, list[Run]], chosen: str) -> str:
    lines = ["| recipe | seeds | val mIoU | test pixel accuracy | test mIoU | test group mIoU | |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for recipe, runs in by_recipe.items():
        cells = [spread([value(run) for run in runs]) for value in (
            lambda run: run.val_miou, lambda run: run.report["pixel_accuracy"], lambda run: run.report["miou"],
            lambda run: run.group_miou)]
        mark = "chosen on val" if recipe == chosen else ""
        lines.append(f"| {recipe} | {len(runs)} | {' | '.join(cells)} | {mark} |")
    return "\n".join(lines)


def noise_floor(by_recipe: dict[str, list[Run]]) -> str:
    """The seed-to-seed standard deviation of val and test mIoU, averaged over the recipes with several seeds."""
    seeded = [runs for runs in by_recipe.values() if len(runs) > 1]
    if not seeded:
        return "One seed per recipe: the seed-to-seed spread is not measured, so no verdict can be given."
    val, test = (statistics.mean(statistics.stdev(value(run) for run in runs) for runs in seeded)
                 for value in (lambda run: run.val_miou, lambda run: run.report["miou"]))
    return (f"Noise floor at this budget: the seed-to-seed standard deviation (mean over the {len(seeded)} recipes "
            f"with several seeds) is {100 * val:.2f} points of val mIoU and {100 * test:.2f} points of test mIoU.")


def image_confusion_on_val(run: Run) -> np.ndarray:
    """The per-image confusion matrices of the run's checkpoint on val, at the annotations' own size: read from
    where `train.py --evaluate <checkpoint> --split val` writes them, else scored now and written there."""
    checkpoint = run.folder / f"{run.model}.pt"
    report_path = default_report_path(checkpoint, "val", "none")
    if not images_path(report_path).is_file():
        report = evaluate_checkpoint(checkpoint, run.options["data"], "val", device=run.options["device"],
                                     precision=run.options["precision"])
        image_ids, image_confusion = report.pop("image_ids"), report.pop("image_confusion")
        write_test_report(report, image_ids, image_confusion, report_path)
    return read_image_confusion(report_path)[1]


def comparison_table(by_recipe: dict[str, list[Run]], pairs: list[tuple[str, str]], split: str,
                     image_confusion_of: Callable[[Run], np.ndarray]) -> str:
    """Per pair (a, b): the difference of the seeds' mean mIoU on split, its interval over seeds and photos, and
    the verdict."""
    statistics_of = {recipe: [image_statistics(image_confusion_of(run)) for run in by_recipe[recipe]]
                     for recipe in dict.fromkeys(recipe for pair in pairs for recipe in pair)}
    lines = [f"| recipes | {split} mIoU difference | 95 % interval (seeds and photos) | verdict |",
             "|---|---:|---:|---|"]
    for first, second in pairs:
        compared = seeded_paired_difference(statistics_of[first], statistics_of[second])
        low, high = (100 * bound for bound in compared["interval"])
        said = verdict(first, second, compared["interval"], len(by_recipe[first]), len(by_recipe[second]))
        lines.append(f"| {first} − {second} | {100 * compared['difference']:+.2f} | {low:+.2f} to {high:+.2f} "
                     f"| {said} |")
    return "\n".join(lines)


def image_confusion_on_test(run: Run) -> np.ndarray:
    return read_image_confusion(run.folder / f"{run.model}_test.json")[1]


def baseline_text(report: dict) -> str:
    """What predicting background (class 0) everywhere scores on the same test photos."""
    true_pixels = torch.tensor(report["confusion_matrix"], dtype=torch.int64).sum(dim=1)
    everywhere = torch.zeros(len(true_pixels), len(true_pixels), dtype=torch.int64)
    everywhere[:, 0] = true_pixels
    metrics = metrics_from_confusion(everywhere)
    groups = group_metrics(everywhere, garment_groups_for(list(report["per_class_iou"])))
    return (f"The all-background baseline on the same test photos: pixel accuracy "
            f"{100 * metrics['pixel_accuracy']:.1f} %, mIoU {100 * metrics['miou']:.1f} %, "
            f"group mIoU {100 * groups['miou']:.1f} %.")


def lever_text(by_recipe: dict[str, list[Run]], baseline: str) -> list[str]:
    """Every recipe against the baseline on val (what a screening keeps), as the summary's lines."""
    if baseline not in by_recipe:
        raise ClothVisionError(f"--baseline {baseline}: no run of that recipe in the results; use one of "
                               f"{', '.join(by_recipe)}")
    pairs = [(recipe, baseline) for recipe in by_recipe if recipe != baseline]
    return [f"Every recipe against the baseline {baseline} on val, the split that chooses (each run's checkpoint "
            "scored on val at the annotations' own size, TTA none; interval over seeds and val photos; a verdict "
            f"needs {MIN_SEEDS} seeds each and an interval clear of 0):", "",
            comparison_table(by_recipe, pairs, "val", image_confusion_on_val), ""]


def results_table(results_dir: Path, baseline: str | None = None) -> str:
    by_recipe = runs_by_recipe(results_dir)
    chosen = chosen_on_val(by_recipe)
    first_report = next(iter(by_recipe.values()))[0].report
    others = [(chosen, other) for other in by_recipe if other != chosen]
    return "\n".join([
        "Val chooses, test reports: the chosen recipe has the highest mean val mIoU over its seeds; test metrics "
        f"are those of each run's best checkpoint (highest val mIoU), at the annotations' own size, TTA "
        f"{first_report['tta']}, 95 % bootstrap intervals over its {first_report['num_images']} test photos. "
        f"Training minutes count every epoch's training and validation, not the start-up.", "",
        runs_table(by_recipe), "", baseline_text(first_report), "",
        "Per recipe, mean ± standard deviation over its seeds:", "", recipes_table(by_recipe, chosen), "",
        noise_floor(by_recipe), "",
        f"The recipe chosen on val against each other one on test: the difference of the seeds' mean test mIoU in "
        f"points, its 95 % interval from a bootstrap over each recipe's seeds and then over the test photos (the "
        f"same photos for both); a verdict needs {MIN_SEEDS} seeds each and an interval clear of 0.", "",
        comparison_table(by_recipe, others, "test", image_confusion_on_test), "",
        *(lever_text(by_recipe, baseline) if baseline is not None else [])])


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description="Print the tables of a study's results folder.")
    parser.add_argument("results_dir", type=Path, help="a study's results folder (e.g. results/cpu)")
    parser.add_argument("--baseline", default=None, metavar="RECIPE",
                        help="also compare every recipe with this one on val (scoring each checkpoint on val once) "
                             "(default: none)")
    args = parser.parse_args(argv)
    table = results_table(args.results_dir, args.baseline)
    print(table)
    return table


if __name__ == "__main__":
    sys.exit(run_cli(main))
