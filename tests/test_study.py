import json
import sys
import tarfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic_ccp import CLASS_NAMES

from dataset import Cache
from evaluation.garment_groups import garment_groups_for
from helpers.errors import ClothVisionError
from models import default_learning_rates
from scripts import study, study_measure, study_plan, study_report, study_training
from trainers.checkpointing import write_history_csv
from trainers.command_line import get_args_parser
from trainers.metrics import group_metrics, metrics_from_confusion
from trainers.summary import summary_markdown


def split_only_cache(train: int, val: int, test: int) -> Cache:
    rows = iter(range(train + val + test))
    split = {name: [next(rows) for _ in range(count)] for name, count in (("train", train), ("val", val),
                                                                          ("test", test))}
    return Cache(images=None, labels=None, meta={"split": split}, cache_dir=Path("unused"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_gpu_study_refuses_to_start_without_cuda_before_any_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ClothVisionError, match="needs a CUDA GPU.*cpu_study.sh"):
        study.main(["--profile", "gpu", "--data", str(tmp_path / "missing")])
    assert list(tmp_path.iterdir()) == []


def test_cpu_profile_gives_every_run_the_same_time_limit():
    profile = study_plan.CPU_PROFILE
    runs = study_plan.planned_runs(profile)
    assert [run.label for run in runs] == ["unet", "unet, schedule poly", "unet, loss ce+jaccard",
                                           "unet, base width 24", "unet, base width 32", "mobilenetv3", "resnet50",
                                           "resnet101"]
    assert runs[1].out_dir == profile.results_dir / "ablation-schedule-poly"
    assert runs[1].slug == "unet-schedule-poly" and runs[1].flags == ("--lr-schedule", "poly")
    assert {run.epochs for run in runs} == {200} and {run.augment for run in runs} == {"flip"}
    # Eight runs, two at a time: four rounds share what the reports leave of the budget.
    seconds_left = 120 * 60
    timed = study_plan.with_time_limits(runs, profile, seconds_left)
    expected = (seconds_left - study_plan.REPORT_RESERVE_SECONDS) / 4 - study_plan.TEST_EVALUATION_SECONDS
    assert [run.time_limit_minutes for run in timed] == [round(expected / 60, 1)] * 8
    # No time left at all still gives each run a minute (train.py always finishes its first epoch).
    assert {run.time_limit_minutes for run in study_plan.with_time_limits(runs, profile, 0)} == {1.0}
    assert study_plan.with_time_limits(runs, study_plan.GPU_PROFILE, 0) == runs


def test_seeds_repeat_every_run_in_its_own_folder():
    profile = replace(study_plan.CPU_PROFILE, seeds=(0, 1), ablations=study_plan.CPU_ABLATIONS[:1],
                      models=("unet", "mobilenetv3"))
    runs = study_plan.planned_runs(profile)
    assert [(run.label, run.seed, run.base_label) for run in runs] == [
        ("unet", 0, "unet"), ("unet, schedule poly", 0, "unet, schedule poly"), ("mobilenetv3", 0, "mobilenetv3"),
        ("unet, seed 1", 1, "unet"), ("unet, schedule poly, seed 1", 1, "unet, schedule poly"),
        ("mobilenetv3, seed 1", 1, "mobilenetv3")]
    assert runs[4].out_dir == profile.results_dir / "seed-1" / "ablation-schedule-poly"
    command = study_training.training_command(runs[4], profile)
    assert command[command.index("--seed") + 1] == "1"


def test_gpu_profile_trains_every_model_for_the_same_epochs():
    runs = study_plan.planned_runs(study_plan.GPU_PROFILE)
    assert [(run.label, run.epochs, run.augment) for run in runs] == [
        (name, 30, "flip") for name in ("unet", "mobilenetv3", "resnet50", "resnet101")]


def test_epoch_estimate_counts_training_and_a_third_of_the_validation_images():
    assert study_plan.estimated_epoch_seconds(10.0, 702, 151) == pytest.approx((702 + 151 / 3) / 10)


def test_training_commands_train_from_scratch_at_from_scratch_rates_without_early_stopping():
    runs = study_plan.with_time_limits(study_plan.planned_runs(study_plan.CPU_PROFILE), study_plan.CPU_PROFILE,
                                       120 * 60)
    commands = {run.label: study_training.training_command(run, study_plan.CPU_PROFILE) for run in runs}
    tail = ["--no-pretrained", "--no-show", "--no-progress"]
    for run in runs:
        command = commands[run.label]
        assert command[:2] == [sys.executable, "train.py"] and command[-3:] == tail
        recipe = command[2:len(command) - len(tail) - len(run.flags)]
        options = dict(zip(recipe[::2], recipe[1::2], strict=True))
        assert "--lr" not in options and "--backbone-lr-factor" not in options
        assert int(options["--patience"]) == int(options["--epochs"]) + 1
        assert (options["--precision"], options["--device"], options["--augment"]) == ("auto", "cpu", "flip")
        assert (options["--lr-schedule"], options["--loss"]) == ("plateau", "ce")
        assert float(options["--time-limit-minutes"]) > 0
    # An ablation's flags come last and override the recipe's.
    poly = get_args_parser().parse_args(commands["unet, schedule poly"][2:])
    assert poly.lr_schedule == "poly" and poly.out == "results/cpu/ablation-schedule-poly"
    assert get_args_parser().parse_args(commands["unet, base width 32"][2:]).unet_base_width == 32
    assert get_args_parser().parse_args(commands["unet"][2:]).unet_base_width == 16
    # What those flags make train.py do: Adam at 1e-3 for every parameter of every model.
    for name in ("unet", "resnet101"):
        train_arguments = get_args_parser().parse_args(commands[name][2:])
        rates = default_learning_rates(name, train_arguments.pretrained, train_arguments.weights)
        assert train_arguments.lr is None and (rates.learning_rate, rates.backbone_lr_factor) == (1e-3, 1.0)


def test_subset_cache_cuts_only_the_train_split():
    cache = split_only_cache(10, 2, 2)
    short = study_measure.subset_cache(cache, 4)
    assert short.split_indices("train").tolist() == [0, 1, 2, 3]
    assert short.meta["split"]["val"] == cache.meta["split"]["val"] == [10, 11]
    assert len(cache.split_indices("train")) == 10


def test_summary_row_comes_from_the_history_and_test_files(tmp_path):
    history = [{"epoch": epoch, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0, "val_acc": 0.5,
                "val_miou": miou, "lr": 1e-3, "seconds": seconds}
               for epoch, miou, seconds in ((1, 0.1, 3.0), (2, 0.3, 5.0), (3, 0.2, 4.0))]
    write_history_csv(history, tmp_path / "unet.csv")
    read_back = study_report.read_history(tmp_path / "unet.csv")
    assert read_back == history
    report = {"best_epoch": 2, "pixel_accuracy": 0.9, "miou": 0.25, "fw_iou": 0.8,
              "garment_groups": {"miou": 0.5}, "learning_rates": "all 0.001 (1.00 M parameters)"}
    summary = study_report.model_summary("unet", read_back, report, parameters=123)
    assert (summary.epochs_run, summary.best_epoch, summary.best_val_miou) == (3, 2, 0.3)
    assert summary.seconds_per_epoch == pytest.approx(4.0) and summary.test_miou == 0.25
    assert summary.test_group_miou == 0.5
    assert summary.learning_rates == "all 0.001 (1.00 M parameters)"
    assert "| 0.9000 | 0.2500 | 0.8000 | 0.5000 | 4.0 |" in summary_markdown([summary])
    intervals = {"pixel_accuracy": [0.88, 0.915], "miou": [0.22, 0.28], "group_miou": [0.45, 0.55]}
    with_intervals = study_report.model_summary("unet", read_back, {**report, "intervals": intervals}, parameters=123)
    assert ("| 90.0 % (88.0–91.5) | 25.0 % (22.0–28.0) | 0.8000 | 50.0 % (45.0–55.0) | 4.0 |"
            in summary_markdown([summary, with_intervals]))


def old_test_report(confusion: list[list[int]]) -> dict:
    """A test report as written before garment groups existed: class names only as per_class_iou's keys."""
    metrics = metrics_from_confusion(confusion, CLASS_NAMES)
    return {**{key: metrics[key] for key in ("pixel_accuracy", "mean_accuracy", "miou", "fw_iou")},
            "per_class_iou": metrics["iou_by_class_name"], "confusion_matrix": confusion}


def test_readme_table_has_group_miou_even_from_reports_written_before_groups():
    confusion = np.zeros((59, 59), dtype=np.int64)
    shirt, blouse, skin = (CLASS_NAMES.index(name) for name in ("shirt", "blouse", "skin"))
    confusion[0, 0], confusion[shirt, blouse], confusion[skin, skin], confusion[skin, 0] = 60, 20, 15, 5
    report = old_test_report(confusion.tolist())
    expected = group_metrics(confusion, garment_groups_for(CLASS_NAMES))
    assert study_report.test_group_metrics(report) == expected
    # Background 60/65, tops 20/20 (a shirt taken for a blouse is still a top), skin 15/20.
    assert expected["miou"] == pytest.approx((60 / 65 + 1 + 15 / 20) / 3)
    run = study_plan.TrainingRun("unet", "unet", Path("unused"), "full", 1)
    measurement = study_measure.ModelMeasurement("unet", 2_000_000, 1, 1.0, 0.5)
    history = [{"seconds": 120.0}]
    lines = study_report.readme_table([run], [measurement], {"unet": report}, {"unet": history}).splitlines()
    assert lines[0].split(" | ")[-3:] == ["test fw-IoU", "test group mIoU", "ms / image |"]
    baseline_cells, unet_cells = (line.split(" | ") for line in lines[2:])
    # The baseline predicts background everywhere: IoU 60/100 for it, 0 for tops and skin.
    assert baseline_cells[-2] == f"{100 * 0.6 / 3:.1f} %"
    assert unet_cells[-2] == f"{100 * expected['miou']:.1f} %" and unet_cells[-1] == "500.0 |"


def test_training_processes_report_exit_codes_and_stop_at_the_deadline(tmp_path, monkeypatch):
    profile = replace(study_plan.CPU_PROFILE, parallel=2, results_dir=tmp_path)
    runs = [study_plan.TrainingRun(label, "unet", tmp_path, "full", 1) for label in ("quick", "slow one")]
    scripts = {"quick": "pass", "slow one": "import time; time.sleep(60)"}
    monkeypatch.setattr(study_training, "training_command",
                        lambda run, profile: [sys.executable, "-c", scripts[run.label]])
    assert study_training.run_training(profile, runs[:1], deadline=None) == {"quick": 0}
    exit_codes = study_training.run_training(profile, runs, deadline=time.monotonic() + 3)
    assert exit_codes == {"quick": 0, "slow one": None}
    assert sorted(path.name for path in (tmp_path / "logs").iterdir()) == ["quick.log", "slow-one.log"]


def test_export_copies_summary_and_figure_and_archives_all_but_checkpoints(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    profile = replace(study_plan.GPU_PROFILE, results_dir=Path("results"))
    for name in ("unet.pt", "unet.csv", "summary.md", "logs/unet.log", "cache/images.npy", "cpu/summary.md"):
        (Path("results") / name).parent.mkdir(parents=True, exist_ok=True)
        (Path("results") / name).write_text(name)
    Path("graph.png").write_text("figure")
    Path("prediction_unet.png").write_text("figure")
    study_report.export(profile, tmp_path / "out", [Path("results/summary.md"), Path("graph.png"),
                                             Path("prediction_unet.png")])
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["graph.png", "results.tar.gz",
                                                                         "summary.md"]
    with tarfile.open(tmp_path / "out" / "results.tar.gz") as archive:
        names = sorted(archive.getnames())
    assert names == ["prediction_unet.png", "results/logs/unet.log", "results/summary.md", "results/unet.csv"]


def test_dry_run_from_the_environment_runs_tiny_on_the_cpu_without_a_deadline(monkeypatch):
    monkeypatch.setenv("DRY_RUN", "1")
    arguments = ["--profile", "gpu", "--epochs", "2", "--unet-base-width", "12"]
    profile = study.profile_from_args(study.get_args_parser().parse_args(arguments))
    assert (profile.device, profile.epochs, profile.stop_at_budget, profile.unet_base_width) == ("cpu", 2, False, 12)
    assert profile.results_dir == profile.figure_path.parent == Path("results/dry-run-gpu")
    assert profile.models == study_plan.GPU_PROFILE.models
    with pytest.raises(ClothVisionError, match="--parallel 0"):
        study.profile_from_args(study.get_args_parser().parse_args(["--parallel", "0"]))


def test_shrunk_dataset_preprocesses_to_the_same_labels_and_nearly_the_same_photos(ccp_synthetic, tmp_path):
    from dataset import load_cache
    from preprocess import preprocess
    from scripts import shrink_dataset

    size = (24, 16)
    shrink_dataset.main(["--data", str(ccp_synthetic), "--out", str(tmp_path / "small"), "--size", *map(str, size)])
    assert sorted(path.name for path in (tmp_path / "small").iterdir()) == ["annotations", "label_list.mat", "photos"]
    with pytest.raises(ClothVisionError, match="already exists"):
        shrink_dataset.main(["--data", str(ccp_synthetic), "--out", str(tmp_path / "small")])
    full = load_cache(preprocess(ccp_synthetic, tmp_path / "full_cache", size, workers=1))
    small = load_cache(preprocess(tmp_path / "small", tmp_path / "small_cache", size, workers=1))
    np.testing.assert_array_equal(small.labels, full.labels)
    assert small.meta["class_names"] == full.meta["class_names"] and small.meta["split"] == full.meta["split"]
    # JPEG re-encoding only: these tiny noisy photos lose ~4 levels on average, a wrong resize far more.
    assert np.abs(small.images.astype(int) - full.images.astype(int)).mean() < 8


def test_all_background_baseline_is_computed_from_the_test_confusion_matrix():
    # Rows are true classes: 6 background pixels, 3 of class 1, 1 of class 2, none of class 3.
    confusion = [[5, 1, 0, 0], [1, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    baseline = study_report.all_background_metrics(confusion, ["null", "shirt", "blouse", "skin"])
    assert baseline["pixel_accuracy"] == pytest.approx(0.6)
    assert baseline["mean_accuracy"] == pytest.approx(1 / 3)  # three classes present, background all right
    assert baseline["miou"] == pytest.approx(0.6 / 3)  # background IoU 6/10, the others 0
    assert baseline["fw_iou"] == pytest.approx(0.6 * 0.6)
    # Background, tops (shirt and blouse) and skin: the background group's IoU is 6/10 again.
    assert baseline["garment_groups"]["miou"] == pytest.approx(0.6 / 2)


def test_a_given_time_limit_and_resume_reach_the_training_commands(tmp_path):
    arguments = ["--profile", "cpu", "--time-limit-minutes", "6", "--resume"]
    profile = replace(study.profile_from_args(study.get_args_parser().parse_args(arguments)), results_dir=tmp_path)
    runs = study_plan.with_time_limits(study_plan.planned_runs(profile), profile, 0)
    assert {run.time_limit_minutes for run in runs} == {6}
    runs = [replace(run, out_dir=tmp_path) for run in runs]
    (tmp_path / "unet_last.pt").write_bytes(b"")
    commands = {run.label: study_training.training_command(run, profile) for run in runs}
    # Only a run that has a last checkpoint resumes; the others start afresh.
    assert "--resume" in commands["unet"] and "--resume" not in commands["mobilenetv3"]
    assert commands["resnet101"][commands["resnet101"].index("--time-limit-minutes") + 1] == "6"


def test_results_table_reads_every_run_of_a_results_folder(tmp_path):
    from scripts import results_table

    # Rows are true classes: class 0 'null' (background), 1 'skin', 2 'shirt'.
    names = ["null", "skin", "shirt"]
    history = [{"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0, "val_acc": 0.5, "val_miou": 0.2,
                "lr": 1e-3, "seconds": 120.0}]
    runs = ((tmp_path, [[6, 0, 0], [1, 2, 0], [0, 0, 1]]),
            (tmp_path / "ablation-schedule-plateau", [[5, 1, 0], [0, 3, 0], [0, 1, 0]]),
            (tmp_path / "seed-1", [[6, 0, 0], [0, 3, 0], [0, 0, 1]]))
    for folder, confusion in runs:
        folder.mkdir(exist_ok=True)
        write_history_csv(history, folder / "unet.csv")
        metrics = metrics_from_confusion(confusion)
        report = {**{key: metrics[key] for key in ("pixel_accuracy", "mean_accuracy", "miou", "fw_iou")},
                  "per_class_iou": dict(zip(names, metrics["per_class_iou"], strict=True)),
                  "confusion_matrix": confusion}
        if folder != tmp_path:
            report["intervals"] = {"pixel_accuracy": [0.7, 0.9], "miou": [0.3, 0.6], "group_miou": [0.4, 0.95]}
        (folder / "unet_test.json").write_text(json.dumps(report))
    table, across_seeds = results_table.results_table(tmp_path).split("\n\nAcross seeds")
    rows = [line.split(" | ") for line in table.splitlines()[2:]]
    assert [row[0].strip("| ") for row in rows] == ["all-background baseline", "unet", "unet, schedule plateau",
                                                    "unet, seed 1"]
    assert rows[0][2] == "60.0 %" and rows[1][1] == "1 (2)" and rows[1][2] == "90.0 %"
    # A report with intervals shows them beside pixel accuracy, mIoU and group mIoU, not the other metrics.
    assert rows[2][2] == "80.0 % (70.0–90.0)" and rows[2][3].endswith("%") and "(" not in rows[2][3]
    assert rows[2][4].endswith("(30.0–60.0)") and rows[2][6].endswith("(40.0–95.0) |")
    # The two seeds of the U-net: pixel accuracy 0.9 and 1.0, mean ± standard deviation.
    seeded = [line for line in across_seeds.splitlines() if line.startswith("| unet |")]
    assert seeded == [f"| unet | 2 | 95.0 ± {100 * 0.05 * 2 ** 0.5:.1f} % | " + seeded[0].split(" | ", 3)[3]]
    with pytest.raises(ClothVisionError, match="holds no <model>_test.json"):
        results_table.results_table(tmp_path / "ablation-schedule-plateau" / "empty")


def test_precision_flag_reaches_every_training_command():
    profile = study.profile_from_args(study.get_args_parser().parse_args(["--profile", "cpu", "--precision", "fp32"]))
    commands = [study_training.training_command(run, profile) for run in study_plan.planned_runs(profile)]
    assert all(command[command.index("--precision") + 1] == "fp32" for command in commands)


def test_an_ablations_parameters_come_from_its_own_config(tmp_path):
    from models import count_parameters, get_model
    from scripts.study_report import run_parameters

    run = study_plan.TrainingRun("unet, base width 16", "unet", tmp_path, "flip", 1, flags=("--unet-base-width", "16"))
    report = {"per_class_iou": dict.fromkeys(f"class{index}" for index in range(59))}
    assert run_parameters(run, report, measured=123) == 123  # no config: the measurement's count
    (tmp_path / "unet_config.json").write_text(json.dumps({"model_kwargs": {"base_width": 16}}))
    assert run_parameters(run, report, measured=123) == count_parameters(get_model("unet", 59, base_width=16))
