"""train.py end to end on tiny caches: every registered model, every file it writes, and their agreement."""

import csv
import itertools
import json

import numpy as np
import pytest
import torch
from training_runs import (
    build_cache,
    run_train,
    single_torch_thread,  # noqa: F401 (autouse fixture: tests run on one thread)
)

from dataset import load_cache
from evaluation.bootstrap import format_with_interval
from evaluation.garment_groups import garment_groups_for
from helpers.checkpoint import load_checkpoint
from models import MODEL_NAMES
from preprocess import preprocess
from trainers.checkpointing import HISTORY_COLUMNS
from trainers.evaluation import evaluate_checkpoint
from trainers.metrics import group_metrics, metrics_from_confusion

EPOCHS = 2
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REQUIRED_CHECKPOINT_KEYS = {
    "format",
    "format_version",
    "model_name",
    "model_kwargs",
    "state_dict",
    "class_names",
    "palette",
    "image_size",
    "mean",
    "std",
    "epoch",
    "best_epoch",
    "metrics",
    "history",
    "args",
    "cache_format_version",
    "split_ids",
    "config",
}
# Only the last checkpoint carries what --resume needs; the best one is the size of the model.
TRAINING_STATE_KEYS = {"optimizer", "scheduler", "early_stopper", "rng"}


@pytest.fixture(scope="module")
def all_models_run(tmp_path_factory):
    """One `--model all` run: two epochs of every model on the same 12-image cache."""
    root = tmp_path_factory.mktemp("all_models")
    cache_dir = build_cache(root)
    results = run_train(
        model="all", data=cache_dir, out=root / "results", epochs=EPOCHS, class_weights="inverse-log-freq"
    )
    return cache_dir, root / "results", results


def read_history(path):
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, [{key: float(value) for key, value in row.items()} for row in reader]


def check_test_report(report: dict, class_names: list[str], test_pixels: int) -> None:
    """The test JSON's numbers are exactly those of the confusion matrix it carries."""
    matrix = np.array(report["confusion_matrix"])
    assert matrix.shape == (len(class_names), len(class_names))
    assert matrix.sum() == test_pixels
    recomputed = metrics_from_confusion(report["confusion_matrix"], class_names)
    for key in ("pixel_accuracy", "mean_accuracy", "miou", "fw_iou"):
        assert report[key] == pytest.approx(recomputed[key], abs=1e-12)
    assert report["per_class_iou"] == recomputed["iou_by_class_name"]
    assert list(report["per_class_iou"]) == class_names
    absent = matrix.sum(axis=1) == 0
    assert [iou is None for iou in report["per_class_iou"].values()] == absent.tolist()
    groups = report["garment_groups"]
    assert groups == group_metrics(report["confusion_matrix"], garment_groups_for(class_names))
    assert sorted(name for names in groups["mapping"].values() for name in names) == sorted(class_names)
    assert list(groups["per_group_iou"]) == list(groups["mapping"])
    # A confusion inside a group is no error at the group level.
    assert groups["pixel_accuracy"] >= report["pixel_accuracy"]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_file_of_every_model_agrees(all_models_run, name):
    _, out, results = all_models_run
    columns, history = read_history(out / f"{name}.csv")
    assert tuple(columns) == HISTORY_COLUMNS
    assert [row["epoch"] for row in history] == [1, 2]
    assert history == [{key: float(value) for key, value in row.items()} for row in results[name]["history"]]

    raw = torch.load(out / f"{name}.pt", weights_only=True)
    assert set(raw) >= REQUIRED_CHECKPOINT_KEYS and not set(raw) & TRAINING_STATE_KEYS
    assert set(torch.load(out / f"{name}_last.pt", weights_only=True)) >= REQUIRED_CHECKPOINT_KEYS | TRAINING_STATE_KEYS
    assert not any(key.startswith(("module.", "_orig_mod.")) for key in raw["state_dict"])
    best, last = load_checkpoint(out / f"{name}.pt"), load_checkpoint(out / f"{name}_last.pt")
    best_epoch = 1 + int(np.argmax([row["val_miou"] for row in history]))
    assert (best["epoch"], best["best_epoch"]) == (best_epoch, best_epoch)
    assert (last["epoch"], last["best_epoch"]) == (EPOCHS, best_epoch)
    assert best["metrics"]["miou"] == history[best_epoch - 1]["val_miou"]
    assert last["history"] == results[name]["history"]
    assert best["args"]["class_weights"] == "inverse-log-freq" and best["model_name"] == name

    report = json.loads((out / f"{name}_test.json").read_text())
    height, width = best["image_size"]
    check_test_report(report, best["class_names"], len(best["split_ids"]["test"]) * height * width)
    assert report["best_epoch"] == best_epoch
    assert report == results[name]["test"]
    assert (out / f"{name}.png").read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize("name", ["unet", "mobilenetv3"])
def test_best_checkpoint_alone_reproduces_its_val_metrics(all_models_run, name):
    """The saved weights are those that scored the best epoch's val metrics (on the two fastest models)."""
    cache_dir, out, _ = all_models_run
    best = load_checkpoint(out / f"{name}.pt")
    # The per-epoch val metrics are at the training size: the report's at_training_size part.
    report = evaluate_checkpoint(out / f"{name}.pt", cache_dir, "val", device="cpu", batch_size=1)
    val_again = report["at_training_size"]
    assert val_again["confusion_matrix"] == best["metrics"]["confusion_matrix"].tolist()
    assert val_again["garment_groups"] == best["metrics"]["garment_groups"]
    assert val_again["garment_groups"]["miou"] == group_metrics(
        val_again["confusion_matrix"], garment_groups_for(best["class_names"]))["miou"]
    assert val_again["loss"] == pytest.approx(best["metrics"]["loss"], rel=1e-5)


def test_comparison_and_summary_cover_every_model(all_models_run):
    _, out, results = all_models_run
    assert (out / "comparison.png").read_bytes()[:8] == PNG_SIGNATURE
    summary, paired = (out / "summary.md").read_text().split("## Paired comparison")
    rows = [line for line in summary.splitlines() if line.startswith("| ")][1:]
    assert [row.split("|")[1].strip() for row in rows] == list(MODEL_NAMES)
    for row, name in zip(rows, MODEL_NAMES, strict=True):
        cells = [cell.strip() for cell in row.split("|")[1:-1]]
        report = results[name]["test"]
        intervals = report["intervals"]
        assert cells[2] == str(EPOCHS)
        assert cells[4:6] == [format_with_interval(report[key], intervals[key]) for key in ("pixel_accuracy", "miou")]
        assert cells[6] == f"{report['fw_iou']:.4f}"
        assert cells[7] == format_with_interval(report["garment_groups"]["miou"], intervals["group_miou"])
    pairs = [line.split("|")[1].strip() for line in paired.splitlines() if line.startswith("| ")][1:]
    assert pairs == [f"{first} − {second}" for first, second in itertools.combinations(MODEL_NAMES, 2)]


def test_unet_learns_on_real_photos(real_ccp_dir, tmp_path):
    """24 real CCP photos at 64x48: the train loss falls and every file is consistent."""
    cache_dir = preprocess(real_ccp_dir, tmp_path / "cache", size=(64, 48), limit=24, workers=1)
    results = run_train(model="unet", data=cache_dir, out=tmp_path / "results", epochs=EPOCHS)
    history = results["unet"]["history"]
    assert history[1]["train_loss"] < history[0]["train_loss"]
    checkpoint = load_checkpoint(tmp_path / "results" / "unet.pt")
    assert checkpoint["class_names"][0] == "null" and len(checkpoint["class_names"]) == 59
    report = json.loads((tmp_path / "results" / "unet_test.json").read_text())
    native_pixels = sum(label.size for label in load_cache(cache_dir).native_labels("test"))
    check_test_report(report, checkpoint["class_names"], native_pixels)
    assert report["at_training_size"]["confusion_matrix"] != report["confusion_matrix"]
    assert np.sum(report["at_training_size"]["confusion_matrix"]) == len(checkpoint["split_ids"]["test"]) * 64 * 48
