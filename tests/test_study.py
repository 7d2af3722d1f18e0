import json
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic_ccp import CLASS_NAMES

from evaluation.garment_groups import garment_groups_for
from helpers.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION
from helpers.errors import ClothVisionError
from scripts import results_table, study, study_report
from trainers.checkpointing import write_history_csv
from trainers.command_line import parse_given_options
from trainers.evaluate_command import default_report_path
from trainers.metrics import group_metrics, metrics_from_confusion
from trainers.report import write_test_report

STUDIES = Path(__file__).resolve().parent.parent / "recipes" / "studies"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_gpu_study_refuses_to_start_without_cuda_before_any_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ClothVisionError, match="needs a CUDA GPU.*cpu_study.sh"):
        study.main([str(STUDIES / "gpu.json"), "--data", str(tmp_path / "missing")])
    assert list(tmp_path.iterdir()) == []


def test_study_files_name_their_recipes_seeds_and_limits():
    cpu, gpu = study.read_study(STUDIES / "cpu.json"), study.read_study(STUDIES / "gpu.json")
    assert (cpu.seeds, cpu.time_limit_minutes, cpu.deadline_minutes, cpu.parallel) == ((0, 1, 2), 10, None, 2)
    assert len(cpu.recipes) == 8 and cpu.image_size == (240, 144)
    assert gpu.recipes == ("gpu-unet", "gpu-mobilenetv3", "gpu-resnet50", "gpu-resnet101")
    assert (gpu.image_size, gpu.device, gpu.deadline_minutes, gpu.time_limit_minutes) == ((496, 304), "cuda", 8, None)


def recipe_keywords(recipe: str) -> dict:
    return parse_given_options(["--config", str(study.RECIPES / f"{recipe}.json")])


def changes_between(base: str, other: str) -> dict:
    """The train.py options recipe `other` sets differently from recipe `base`."""
    base_keywords = recipe_keywords(base)
    return {key: value for key, value in recipe_keywords(other).items() if base_keywords.get(key) != value}


def test_the_cpu_hour_screen_changes_one_lever_of_the_baseline_recipe_per_recipe_for_5_minutes():
    screen = study.read_study(STUDIES / "cpu-hour-screen.json")
    assert (screen.seeds, screen.parallel, screen.time_limit_minutes) == ((0, 1, 2), 2, 5)
    assert screen.image_size == (240, 144) and screen.cache == Path("data/processed_240x144")
    assert {recipe: changes_between("cpu-hour-baseline", recipe) for recipe in screen.recipes} == {
        "cpu-hour-baseline": {},
        "cpu-hour-stride2": {"unet_stem": "stride2"},
        "cpu-hour-class-weights": {"class_weights": "inverse-log-freq", "class_weight_offset": 1.2},
        "cpu-hour-ema": {"ema_decay": 0.999},
        "cpu-hour-linear": {"lr_schedule": "linear"},
        "cpu-hour-progressive-resize": {"progressive_resize": 0.5},
    }
    # The study's 5 minutes replace the recipe's 60 on the command line.
    command = study.training_command(screen, "cpu-hour-ema", 1, resume=False)
    assert parse_given_options(command[2:])["time_limit_minutes"] == 5


def test_the_cpu_hour_recipe_is_the_baseline_with_the_two_levers_the_screen_kept_confirmed_and_run_for_an_hour():
    confirm = study.read_study(STUDIES / "cpu-hour-confirm.json")
    assert confirm.recipes == ("cpu-hour-baseline", "cpu-hour")
    assert (confirm.seeds, confirm.parallel, confirm.time_limit_minutes) == ((0, 1, 2), 2, 20)
    assert changes_between(*confirm.recipes) == {
        "class_weights": "inverse-log-freq", "class_weight_offset": 1.2, "progressive_resize": 0.5}
    # The reference run: both recipes one after the other, each alone on the machine for the recipe's hour.
    reference = study.read_study(STUDIES / "cpu-hour-reference.json")
    assert (reference.recipes, reference.seeds, reference.parallel) == (("cpu-hour", "cpu-hour-baseline"), (0,), 1)
    command = study.training_command(reference, "cpu-hour", 0, resume=False)
    hour = recipe_keywords("cpu-hour")["time_limit_minutes"]
    assert parse_given_options(command[2:])["time_limit_minutes"] == 60 == hour


# The studies of one lever: the recipe against itself with one change per other recipe, seeds 0, 1, 2, two runs at a
# time.
@pytest.mark.parametrize("study_file, minutes, changes", [
    ("cpu-hour-schedule.json", 20, {"cpu-hour-linear-decay": {"lr_schedule": "linear"}}),
    # The same pair at the recipe's full hour, where the plateau schedule has time to act.
    ("cpu-hour-schedule-hour.json", 60, {"cpu-hour-linear-decay": {"lr_schedule": "linear"}}),
    ("cpu-hour-resize-share.json", 20, {"cpu-hour-resize-quarter": {"progressive_resize": 0.25}}),
    ("cpu-hour-augment-hour.json", 60, {"cpu-hour-augment-full": {"augment": "full"}}),
    ("cpu-hour-width-batch.json", 20, {"cpu-hour-width-24": {"unet_base_width": 24},
                                       "cpu-hour-batch-4": {"batch_size": 4}}),
])
def test_a_lever_study_pits_the_recipe_against_itself_with_one_change(study_file, minutes, changes):
    lever = study.read_study(STUDIES / study_file)
    assert lever.recipes == ("cpu-hour", *changes)
    assert (lever.seeds, lever.parallel, lever.time_limit_minutes) == ((0, 1, 2), 2, minutes)
    assert {other: changes_between("cpu-hour", other) for other in changes} == changes


def test_no_two_study_files_write_the_same_results_or_figure():
    studies = [study.read_study(path) for path in sorted(STUDIES.glob("*.json"))]
    assert len({one.results for one in studies}) == len({one.figure for one in studies}) == len(studies) >= 9


def test_a_training_command_is_the_recipe_plus_where_which_seed_and_how_long(tmp_path):
    cpu = study.read_study(STUDIES / "cpu.json")
    command = study.training_command(cpu, "cpu-unet-poly", 2, resume=False)
    assert command[:2] == [sys.executable, "train.py"]
    given = parse_given_options(command[2:])
    # What the recipe file says reaches train.py untouched; the study adds only these.
    assert given == {"model": "unet", "unet_base_width": 16, "epochs": 200, "patience": 200, "lr_schedule": "poly",
                     "data": "data/processed_240x144", "out": "results/cpu/cpu-unet-poly/seed-2", "seed": 2,
                     "device": "cpu", "show_plots": False, "show_progress": False, "time_limit_minutes": 10}
    # --resume continues only the runs that have a last checkpoint.
    elsewhere = replace(cpu, results=tmp_path)
    (tmp_path / "cpu-unet" / "seed-0").mkdir(parents=True)
    (tmp_path / "cpu-unet" / "seed-0" / "unet_last.pt").write_bytes(b"")
    assert study.training_command(elsewhere, "cpu-unet", 0, resume=True)[-1] == "--resume"
    assert "--resume" not in study.training_command(elsewhere, "cpu-unet", 1, resume=True)


def test_dry_run_from_the_environment_runs_tiny_with_three_seeds_on_the_cpu(monkeypatch):
    monkeypatch.setenv("DRY_RUN", "1")
    arguments = study.get_args_parser().parse_args([str(STUDIES / "gpu.json"), "--seeds", "4"])
    dry = study.study_from_args(arguments)
    assert (dry.device, dry.image_size, dry.deadline_minutes, dry.seeds) == ("cpu", (48, 32), None, (0, 1, 2))
    assert dry.results == dry.figure.parent == Path("results/dry-run-gpu") and dry.recipes[0] == "gpu-unet"
    assert study.training_command(dry, "gpu-unet", 1, resume=False)[-6:] == list(study.DRY_RUN_FLAGS)
    with pytest.raises(ClothVisionError, match="--time-limit-minutes 0"):
        study.study_from_args(study.get_args_parser().parse_args([str(STUDIES / "cpu.json"), "--time-limit-minutes",
                                                                  "0"]))


def test_a_study_file_naming_a_missing_recipe_is_refused_in_one_line(tmp_path):
    content = json.loads((STUDIES / "cpu.json").read_text())
    (tmp_path / "study.json").write_text(json.dumps({**content, "recipes": ["cpu-unet", "cpu-unet-huge"]}))
    with pytest.raises(ClothVisionError, match=r"names recipes that recipes/ lacks \(cpu-unet-huge\)"):
        study.read_study(tmp_path / "study.json")


def test_training_processes_report_exit_codes_and_stop_when_told(tmp_path):
    commands = {"quick": [sys.executable, "-c", "pass"],
                "slow/seed-0": [sys.executable, "-c", "import time; time.sleep(600)"],
                "never started": [sys.executable, "-c", "pass"]}
    # Stopped once the quick run has ended: the slow one is surely running then, whatever the machine's speed.
    exit_codes = study.run_training(commands, 2, tmp_path / "logs", lambda finished: "quick" in finished)
    assert exit_codes == {"quick": 0, "slow/seed-0": None, "never started": None}
    assert sorted(path.name for path in (tmp_path / "logs").iterdir()) == ["quick.log", "slow-seed-0.log"]
    assert study.run_training({"quick": commands["quick"]}, 2, tmp_path / "logs", lambda _: False) == {"quick": 0}


def write_run(folder: Path, test_confusion: list[list[list[int]]], val_miou: float, final_rate: float) -> None:
    """What train.py leaves in --out for a unet run: history, config, last checkpoint, test report and images."""
    folder.mkdir(parents=True)
    history = [{"epoch": epoch, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0, "val_acc": 0.5,
                "val_miou": miou, "lr": 1e-3, "seconds": 270.0} for epoch, miou in ((1, val_miou / 2), (2, val_miou))]
    write_history_csv(history, folder / "unet.csv")
    options = {"lr": 1e-3, "batch_size": 8, "time_limit_minutes": 10.0}
    (folder / "unet_config.json").write_text(json.dumps({"options": options, "model_kwargs": {"base_width": 4}}))
    torch.save({"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
                "optimizer": {"param_groups": [{"lr": final_rate}]}}, folder / "unet_last.pt")
    matrices = np.array(test_confusion)
    metrics = metrics_from_confusion(matrices.sum(axis=0), CLASS_NAMES[:3])
    report = {**{key: metrics[key] for key in ("pixel_accuracy", "mean_accuracy", "miou", "fw_iou")},
              "num_images": len(matrices), "tta": "none", "per_class_iou": metrics["iou_by_class_name"],
              "confusion_matrix": matrices.sum(axis=0).tolist(),
              "garment_groups": group_metrics(matrices.sum(axis=0), garment_groups_for(CLASS_NAMES[:3])),
              "intervals": {"pixel_accuracy": [0.5, 0.9], "miou": [0.2, 0.6], "group_miou": [0.3, 0.7]}}
    write_test_report(report, [f"{index:04d}" for index in range(len(matrices))], matrices, folder / "unet_test.json")


def test_the_study_chooses_on_val_even_where_test_ranks_the_other_way(tmp_path):
    rng = np.random.default_rng(0)
    photos = [[[900, 0, 0], [0, int(rng.integers(50, 150)), 0], [0, 0, int(rng.integers(20, 60))]] for _ in range(8)]

    def worse(share: float) -> list[list[list[int]]]:
        """The photos with share of each class's pixels taken for background."""
        matrices = np.array(photos)
        lost = (matrices[:, 1:, 1:] * share).astype(int)
        matrices[:, 1:, 1:] -= lost
        matrices[:, 1:, 0] += lost.sum(axis=2)
        return matrices.tolist()

    # "steady" is ahead on val at every seed, "lucky" ahead on test.
    for seed, (steady_test, lucky_test) in enumerate(((0.3, 0.1), (0.35, 0.2), (0.3, 0.15))):
        write_run(tmp_path / "steady" / f"seed-{seed}", worse(steady_test), 0.40 + 0.01 * seed, 1e-4)
        write_run(tmp_path / "lucky" / f"seed-{seed}", worse(lucky_test), 0.30 + 0.01 * seed, 1e-5)
    write_run(tmp_path / "single" / "seed-0", worse(0.0), 0.35, 1e-3)
    by_recipe = results_table.runs_by_recipe(tmp_path)
    assert {recipe: [run.seed for run in runs] for recipe, runs in by_recipe.items()} == {
        "lucky": [0, 1, 2], "single": [0], "steady": [0, 1, 2]}
    best_on_test = max(by_recipe, key=lambda recipe: np.mean([run.report["miou"] for run in by_recipe[recipe]]))
    assert best_on_test == "single" and results_table.chosen_on_val(by_recipe) == "steady"
    table = results_table.results_table(tmp_path)
    rows = {line.split(" | ")[0] + " | " + line.split(" | ")[1]: line for line in table.splitlines()
            if line.startswith("| ")}
    assert rows["| steady | 3"].endswith("| chosen on val |") and "41.0 ± 1.0 %" in rows["| steady | 3"]
    assert "| 9.0 / 10 | 0.0001 (0.10×) | 42.0 % |" in rows["| steady | 2"]
    assert "| 9.0 / 10 | 1e-05 (0.01×) |" in rows["| lucky | 0"]
    verdicts = [line for line in table.splitlines() if line.startswith("| steady − ")]
    assert verdicts[0].startswith("| steady − lucky | -") and verdicts[0].endswith("| lucky better |")
    assert verdicts[1].startswith("| steady − single |") and verdicts[1].endswith("| no verdict (fewer than 3 seeds) |")
    assert "1.00 points of val mIoU" in table
    with pytest.raises(ClothVisionError, match="holds no <recipe>/seed-<n>/<model>_test.json"):
        results_table.results_table(tmp_path / "empty")


def test_all_background_baseline_comes_from_the_test_confusion_matrix():
    # Rows are true classes: 6 background pixels, 3 of class 1, 1 of class 2, none of class 3.
    confusion = [[5, 1, 0, 0], [1, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    names = ["null", "shirt", "blouse", "skin"]
    text = results_table.baseline_text({"confusion_matrix": confusion, "per_class_iou": dict.fromkeys(names)})
    # Background IoU 6/10, the others 0; groups: background 6/10 and tops (shirt and blouse) 0.
    assert text.endswith(f"pixel accuracy 60.0 %, mIoU {100 * 0.6 / 3:.1f} %, group mIoU 30.0 %.")


def test_export_copies_summary_and_figure_and_archives_all_but_checkpoints_and_cache(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("r/seed-0/unet.pt", "r/seed-0/unet.csv", "summary.md", "logs/r.log", "cache/images.npy"):
        (Path("results") / name).parent.mkdir(parents=True, exist_ok=True)
        (Path("results") / name).write_text(name)
    Path("graph.png").write_text("figure")
    study_report.export(Path("results"), tmp_path / "out", [Path("results/summary.md"), Path("graph.png")])
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["graph.png", "results.tar.gz",
                                                                         "summary.md"]
    with tarfile.open(tmp_path / "out" / "results.tar.gz") as archive:
        names = sorted(archive.getnames())
    assert names == ["results/logs/r.log", "results/r/seed-0/unet.csv", "results/summary.md"]


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


def test_every_recipe_is_compared_with_the_baseline_on_val_from_the_val_scores_beside_its_checkpoint(tmp_path):
    rng = np.random.default_rng(1)
    photos = np.array([[[900, 0, 0], [0, int(rng.integers(50, 150)), 0], [0, 0, int(rng.integers(20, 60))]]
                       for _ in range(8)])

    def val_scores(folder: Path, share: float) -> None:
        """What `train.py --evaluate unet.pt --split val` leaves beside the checkpoint: share of each garment's
        pixels taken for background on every val photo."""
        matrices = photos.copy()
        lost = (matrices[:, 1:, 1:] * share).astype(int)
        matrices[:, 1:, 1:] -= lost
        matrices[:, 1:, 0] += lost.sum(axis=2)
        write_test_report({"split": "val"}, [f"{index:04d}" for index in range(len(matrices))], matrices,
                          default_report_path(folder / "unet.pt", "val", "none"))

    # On test the two recipes are the same; on val "lever" loses less of every garment at every seed.
    for seed, (lever, baseline) in enumerate(((0.1, 0.4), (0.15, 0.45), (0.1, 0.5))):
        for recipe, share in (("lever", lever), ("baseline", baseline)):
            write_run(tmp_path / recipe / f"seed-{seed}", photos.tolist(), 0.3, 1e-4)
            val_scores(tmp_path / recipe / f"seed-{seed}", share)
    write_run(tmp_path / "single" / "seed-0", photos.tolist(), 0.3, 1e-4)
    val_scores(tmp_path / "single" / "seed-0", 0.0)
    table = results_table.results_table(tmp_path, baseline="baseline")
    assert "Every recipe against the baseline baseline on val" in table
    rows = [line for line in table.splitlines() if line.startswith(("| lever − baseline |", "| single − baseline |"))]
    assert rows[0].startswith("| lever − baseline | +") and rows[0].endswith("| lever better |")
    assert rows[1].endswith("| no verdict (fewer than 3 seeds) |")
    with pytest.raises(ClothVisionError, match="^--baseline missing: no run of that recipe in the results; use one of"):
        results_table.results_table(tmp_path, baseline="missing")
