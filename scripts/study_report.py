"""A study's results: per-run summaries, the README table with the all-background baseline, prediction
figures, and the copy of everything but checkpoints for a machine that sends back only one folder."""

import contextlib
import csv
import io
import json
import shutil
import statistics
import tarfile
from pathlib import Path

import torch

from evaluation.bootstrap import format_with_interval
from evaluation.garment_groups import garment_groups_for
from img_test import test_split_image, test_with_image
from inference.predictor import SegmentationPredictor
from models import count_parameters, get_model
from scripts.study_measure import ModelMeasurement
from scripts.study_plan import StudyProfile, TrainingRun
from scripts.study_training import say
from trainers.metrics import group_metrics, metrics_from_confusion
from trainers.summary import ModelSummary


def study_folders(results_dir: Path) -> list[Path]:
    """The folders a study writes runs into: its own (the recipe's runs of the first seed), one per
    ablation, and the same again under seed-N for every further seed."""
    roots = [results_dir, *sorted(results_dir.glob("seed-*"))]
    return [folder for root in roots for folder in (root, *sorted(root.glob("ablation-*")))]


def run_label(folder: Path, results_dir: Path, model: str) -> tuple[str, str]:
    """(label, label without the seed) of the run of model in folder, as the study labels it:
    'unet', 'unet, schedule plateau', 'unet, schedule plateau, seed 1'."""
    base = model
    if folder.name.startswith("ablation-"):
        base += ", " + folder.name.removeprefix("ablation-").replace("-", " ")
    seed_folder = folder if folder.name.startswith("seed-") else folder.parent
    seeded = seed_folder != results_dir and seed_folder.name.startswith("seed-")
    return (f"{base}, seed {seed_folder.name.removeprefix('seed-')}" if seeded else base), base


def read_history(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [{key: int(value) if key == "epoch" else float(value) for key, value in row.items()}
                for row in csv.DictReader(handle)]


def report_class_names(test_report: dict) -> list[str]:
    """A test report's class names, in class order: the keys of its per_class_iou."""
    return list(test_report["per_class_iou"])


def test_group_metrics(test_report: dict) -> dict:
    """The report's garment-group metrics; reports written before they existed get them from their
    confusion matrix, so the README table can be regenerated from any run."""
    if "garment_groups" in test_report:
        return test_report["garment_groups"]
    return group_metrics(test_report["confusion_matrix"], garment_groups_for(report_class_names(test_report)))


def model_summary(label: str, history: list[dict], test_report: dict, parameters: int) -> ModelSummary:
    best = history[test_report["best_epoch"] - 1]
    return ModelSummary(label, parameters, len(history), test_report["best_epoch"], best["val_miou"],
                        test_report["pixel_accuracy"], test_report["miou"], test_report["fw_iou"],
                        test_group_metrics(test_report)["miou"],
                        sum(row["seconds"] for row in history) / len(history), test_report["learning_rates"],
                        test_report.get("intervals"))


def all_background_metrics(confusion_matrix: list[list[int]], class_names: list[str]) -> dict:
    """The metrics, garment-group metrics included, of a model that predicts background (class 0) for every
    pixel of the same split."""
    true_pixels = torch.tensor(confusion_matrix, dtype=torch.int64).sum(dim=1)
    background_everywhere = torch.zeros(len(true_pixels), len(true_pixels), dtype=torch.int64)
    background_everywhere[:, 0] = true_pixels
    metrics = metrics_from_confusion(background_everywhere)
    metrics["garment_groups"] = group_metrics(background_everywhere, garment_groups_for(class_names))
    return metrics


def metric_cells(report: dict) -> str:
    """Pixel accuracy, mean accuracy, mIoU, fw-IoU and group mIoU as percentages; those with a bootstrap
    interval in the report (reports written since intervals exist) show it: '9.3 % (8.1–10.4)'."""
    values = {"pixel_accuracy": report["pixel_accuracy"], "mean_accuracy": report["mean_accuracy"],
              "miou": report["miou"], "fw_iou": report["fw_iou"], "group_miou": test_group_metrics(report)["miou"]}
    intervals = report.get("intervals", {})
    return " | ".join(format_with_interval(value, intervals[metric]) if metric in intervals
                      else f"{100 * value:.1f} %" for metric, value in values.items())


def seed_table(reports_by_base_label: dict[str, list[dict]]) -> str:
    """Runs repeated with several seeds: the mean ± standard deviation across seeds of their test metrics,
    beside which each seed's own row shows its bootstrap interval (the spread over test images). Empty when
    no run has more than one seed."""
    repeated = {label: reports for label, reports in reports_by_base_label.items() if len(reports) > 1}
    if not repeated:
        return ""
    lines = ["| run | seeds | test pixel accuracy | test mIoU | test group mIoU |", "|---|---:|---:|---:|---:|"]
    for label, reports in repeated.items():
        cells = []
        for values in ([report["pixel_accuracy"] for report in reports], [report["miou"] for report in reports],
                       [test_group_metrics(report)["miou"] for report in reports]):
            cells.append(f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f} %")
        lines.append(f"| {label} | {len(reports)} | {' | '.join(cells)} |")
    return "\n\n" + "\n".join(["Across seeds (mean ± standard deviation of the seeds' test metrics):", "", *lines])


def run_parameters(run: TrainingRun, report: dict, measured: int) -> int:
    """The parameters of the network a run trained, rebuilt from its <model>_config.json (an ablation may have
    changed the width that the throughput measurement used); measured, for runs written before configs were."""
    config_path = run.out_dir / f"{run.model}_config.json"
    if not config_path.is_file():
        return measured
    config = json.loads(config_path.read_text(encoding="utf-8"))
    return count_parameters(get_model(run.model, len(report["per_class_iou"]), **config["model_kwargs"]))


def readme_table(runs: list[TrainingRun], measurements: list[ModelMeasurement], reports: dict[str, dict],
                 histories: dict[str, list[dict]]) -> str:
    """One row per finished run (by label) after the all-background baseline of the same test split."""
    lines = ["| model | parameters | epochs (training minutes) | test pixel accuracy | test mean accuracy "
             "| test mIoU | test fw-IoU | test group mIoU | ms / image |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    if reports:
        # Every run is tested on the same split, so any one's confusion matrix gives the baseline.
        first_report = next(iter(reports.values()))
        baseline = all_background_metrics(first_report["confusion_matrix"], report_class_names(first_report))
        lines.append(f"| all-background baseline | – | – | {metric_cells(baseline)} | – |")
    by_model = {item.name: item for item in measurements}
    for run in runs:
        if run.label in reports:
            item, history = by_model[run.model], histories[run.label]
            minutes = sum(row["seconds"] for row in history) / 60
            # The latency was measured with the recipe's network, which an ablation's flags may change.
            latency = "–" if run.flags else f"{1e3 * item.inference_seconds:.1f}"
            lines.append(f"| {run.label} | {run_parameters(run, reports[run.label], item.parameters) / 1e6:.2f} M "
                         f"| {len(history)} ({minutes:.0f}) | {metric_cells(reports[run.label])} | {latency} |")
    by_base_label: dict[str, list[dict]] = {}
    for run in runs:
        if run.label in reports:
            by_base_label.setdefault(run.base_label or run.label, []).append(reports[run.label])
    return "\n".join(lines) + seed_table(by_base_label)


def write_prediction_figures(profile: StudyProfile, data_dir: Path, runs: list[TrainingRun]) -> list[Path]:
    """Original | Label | Prediction on the first test image, one figure per finished run, in results."""
    figures = []
    for run in runs:
        checkpoint = run.out_dir / f"{run.model}.pt"
        path = profile.results_dir / f"prediction_{run.slug}.png"
        # Loaded once, for the test split's ids and the prediction alike.
        predictor = SegmentationPredictor(checkpoint, profile.device, profile.precision)
        with contextlib.redirect_stdout(io.StringIO()):
            test_with_image(test_split_image(predictor, 0, data_dir), predictor, show=False, save_to=path)
        figures.append(path)
    return figures


def export(profile: StudyProfile, out_dir: Path, files: list[Path]) -> None:
    """Copy summary and figure to out_dir, and every output except checkpoints as results.tar.gz."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in files[:2]:
        if path.is_file():
            shutil.copy2(path, out_dir / path.name)
    # This study's outputs only: the results folder may hold other studies in subfolders (results/cpu, ...).
    written = [path for folder in (*study_folders(profile.results_dir), profile.results_dir / "logs")
               for path in folder.glob("*") if path.is_file()]
    with tarfile.open(out_dir / "results.tar.gz", "w:gz") as archive:
        for path in sorted({*written, *files[2:]}):
            if path.is_file() and path.suffix != ".pt":
                archive.add(path, arcname=str(path))
    say(f"copied {', '.join(path.name for path in files[:2])} and results.tar.gz to {out_dir}")
