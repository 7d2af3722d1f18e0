"""The README's results table from a results folder alone: every run's test report and history, with the
all-background baseline of the same test split and the garment-group mIoU.

    python -m scripts.results_table results/cpu

Runs are the `<model>_test.json` files of the folder, of its `ablation-*` subfolders (the study's ablations) and
of its `seed-*` subfolders (further seeds), labelled like the study labels them ('unet', 'unet, schedule
plateau', 'unet, seed 1'); runs repeated with several seeds get a second table of their mean ± standard
deviation. Reports written before the garment groups existed get their group metrics from their confusion
matrix.
"""

import argparse
import json
import sys
from pathlib import Path

from helpers.errors import ClothVisionError, run_cli
from scripts.study_report import (
    all_background_metrics,
    metric_cells,
    read_history,
    report_class_names,
    run_label,
    seed_table,
    study_folders,
)
from trainers.report import images_path, read_image_confusion
from trainers.summary import paired_comparison_markdown

HEADER = ("| model | epochs (training minutes) | test pixel accuracy | test mean accuracy | test mIoU | test fw-IoU "
          "| test group mIoU |\n|---|---:|---:|---:|---:|---:|---:|")


def run_reports(results_dir: Path) -> dict[str, tuple[dict, list[dict], str, Path]]:
    """{label: (test report, history, label without the seed, report path)} of every run in results_dir, the
    folder's own runs first."""
    runs = {}
    for folder in study_folders(results_dir):
        for report_path in sorted(folder.glob("*_test.json")):
            model = report_path.name.removesuffix("_test.json")
            report = json.loads(report_path.read_text(encoding="utf-8"))
            label, base_label = run_label(folder, results_dir, model)
            runs[label] = (report, read_history(folder / f"{model}.csv"), base_label, report_path)
    return runs


def results_table(results_dir: Path) -> str:
    runs = run_reports(results_dir)
    if not runs:
        raise ClothVisionError(f"{results_dir} holds no <model>_test.json: pass the --out folder of a train.py run "
                               "or a study's results folder")
    first_report = next(iter(runs.values()))[0]
    baseline = all_background_metrics(first_report["confusion_matrix"], report_class_names(first_report))
    lines = [HEADER, f"| all-background baseline | – | {metric_cells(baseline)} |"]
    by_base_label: dict[str, list[dict]] = {}
    for label, (report, history, base_label, _) in runs.items():
        minutes = sum(row["seconds"] for row in history) / 60
        lines.append(f"| {label} | {len(history)} ({minutes:.0f}) | {metric_cells(report)} |")
        by_base_label.setdefault(base_label, []).append(report)
    return "\n".join(lines) + seed_table(by_base_label) + "\n" + paired_against_best(runs)


def paired_against_best(runs: dict[str, tuple[dict, list[dict], str, Path]]) -> str:
    """The run of highest test mIoU against every other run scored on the same test images."""
    best = max(runs, key=lambda label: runs[label][0]["miou"])
    image_confusion = {label: read_image_confusion(report_path)[1]
                       for label, (_, _, _, report_path) in runs.items() if images_path(report_path).is_file()}
    if best not in image_confusion or len(image_confusion) < 2:
        return ""
    ordered = {best: image_confusion.pop(best), **image_confusion}
    return paired_comparison_markdown(ordered, against_first_only=True)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description="Print the README's results table of a results folder.")
    parser.add_argument("results_dir", type=Path, help="a train.py --out folder or a study's results folder")
    table = results_table(parser.parse_args(argv).results_dir)
    print(table)
    return table


if __name__ == "__main__":
    sys.exit(run_cli(main))
