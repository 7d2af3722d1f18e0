import sys
import tarfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dataset import Cache
from errors import ClothVisionError
from scripts import study
from trainers.model_trainer import write_history_csv


def split_only_cache(train: int, val: int, test: int) -> Cache:
    rows = iter(range(train + val + test))
    split = {name: [next(rows) for _ in range(count)] for name, count in (("train", train), ("val", val),
                                                                          ("test", test))}
    return Cache(images=None, labels=None, meta={"split": split}, cache_dir=Path("unused"))


def measurement(name: str, images_per_second: float) -> study.ModelMeasurement:
    return study.ModelMeasurement(name, parameters=1000, forward_flops=10**9,
                                  training_images_per_second=images_per_second, inference_seconds=0.01)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_gpu_study_refuses_to_start_without_cuda_before_any_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ClothVisionError, match="needs a CUDA GPU.*cpu_study.sh"):
        study.main(["--profile", "gpu", "--data", str(tmp_path / "missing")])
    assert list(tmp_path.iterdir()) == []


def test_cpu_profile_fits_its_epochs_into_the_budget():
    cache = split_only_cache(702, 151, 151)
    # 10 training images/s: an epoch is 702 / 10 s of training plus a third of that rate's cost per val image.
    epoch_seconds = (702 + 151 / 3) / 10
    assert study.estimated_epoch_seconds(measurement("unet", 10.0), cache) == pytest.approx(epoch_seconds)
    expected = int((30 * 60 - study.CPU_FIXED_COST_SECONDS) / epoch_seconds)
    assert study.choose_epochs(study.CPU_PROFILE, [measurement("unet", 10.0)], cache) == expected == 22
    assert study.choose_epochs(study.CPU_PROFILE, [measurement("unet", 0.01)], cache) == 1
    assert study.choose_epochs(study.GPU_PROFILE, [measurement("unet", 0.01)], cache) == 30


def test_training_command_trains_from_scratch_without_early_stopping():
    command = study.training_command("resnet50", study.GPU_PROFILE, epochs=30)
    assert command[:4] == [sys.executable, "train.py", "--model", "resnet50"]
    assert command[-2:] == ["--no-pretrained", "--no-show"]
    options = dict(zip(command[4:-2:2], command[5:-2:2], strict=True))
    assert options["--patience"] == "31" and options["--epochs"] == "30" and options["--device"] == "cuda"
    assert options["--data"] == "data/processed" and options["--out"] == "results"


def test_subset_cache_cuts_only_the_train_split():
    cache = split_only_cache(10, 2, 2)
    short = study.subset_cache(cache, 4)
    assert short.split_indices("train").tolist() == [0, 1, 2, 3]
    assert short.meta["split"]["val"] == cache.meta["split"]["val"] == [10, 11]
    assert len(cache.split_indices("train")) == 10


def test_summary_row_comes_from_the_history_and_test_files(tmp_path):
    history = [{"epoch": epoch, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0, "val_acc": 0.5,
                "val_miou": miou, "lr": 1e-3, "seconds": seconds}
               for epoch, miou, seconds in ((1, 0.1, 3.0), (2, 0.3, 5.0), (3, 0.2, 4.0))]
    write_history_csv(history, tmp_path / "unet.csv")
    read_back = study.read_history(tmp_path / "unet.csv")
    assert read_back == history
    report = {"best_epoch": 2, "pixel_accuracy": 0.9, "miou": 0.25, "fw_iou": 0.8}
    summary = study.model_summary("unet", read_back, report, parameters=123)
    assert (summary.epochs_run, summary.best_epoch, summary.best_val_miou) == (3, 2, 0.3)
    assert summary.seconds_per_epoch == pytest.approx(4.0) and summary.test_miou == 0.25


def test_training_processes_report_exit_codes_and_stop_at_the_deadline(tmp_path, monkeypatch):
    profile = replace(study.CPU_PROFILE, models=("unet", "resnet50"), parallel=2, results_dir=tmp_path)
    scripts = {"unet": "pass", "resnet50": "import time; time.sleep(60)"}
    monkeypatch.setattr(study, "training_command",
                        lambda name, profile, epochs: [sys.executable, "-c", scripts[name]])
    assert study.run_training(replace(profile, models=("unet",)), 1, deadline=None) == {"unet": 0}
    exit_codes = study.run_training(profile, 1, deadline=time.monotonic() + 3)
    assert exit_codes == {"unet": 0, "resnet50": None}
    assert sorted(path.name for path in (tmp_path / "logs").iterdir()) == ["resnet50.log", "unet.log"]


def test_export_copies_summary_and_figure_and_archives_all_but_checkpoints(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    profile = replace(study.GPU_PROFILE, results_dir=Path("results"))
    for name in ("unet.pt", "unet.csv", "summary.md", "logs/unet.log", "cache/images.npy", "cpu/summary.md"):
        (Path("results") / name).parent.mkdir(parents=True, exist_ok=True)
        (Path("results") / name).write_text(name)
    Path("graph.png").write_text("figure")
    Path("prediction_unet.png").write_text("figure")
    study.export(profile, tmp_path / "out", [Path("results/summary.md"), Path("graph.png"),
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
    assert profile.models == study.GPU_PROFILE.models
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
    baseline = study.all_background_metrics(confusion)
    assert baseline["pixel_accuracy"] == pytest.approx(0.6)
    assert baseline["mean_accuracy"] == pytest.approx(1 / 3)  # three classes present, background all right
    assert baseline["miou"] == pytest.approx(0.6 / 3)  # background IoU 6/10, the others 0
    assert baseline["fw_iou"] == pytest.approx(0.6 * 0.6)
