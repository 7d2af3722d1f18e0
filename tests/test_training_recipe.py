"""train.py's recipe: learning rates by where the weights come from, the time limit, what gets recorded."""

import json

import pytest
import torch
from training_runs import (
    run_train,
    single_torch_thread,  # noqa: F401 (autouse fixture: tests run on one thread)
)

from helpers.checkpoint import load_checkpoint
from models import get_model


def starting_rates(out, name: str) -> list[float]:
    """Adam's rate of each parameter group in the first epoch (the plateau schedule keeps it that long)."""
    return [group["lr"] for group in load_checkpoint(out / f"{name}_last.pt")["optimizer"]["param_groups"]]


@pytest.mark.parametrize(
    ("name", "arguments", "expected_rates"),
    [
        ("unet", {}, [1e-3]),
        ("unet", {"pretrained": "imagenet"}, [1e-3]),  # no pretrained U-net exists: always from scratch
        ("mobilenetv3", {}, [1e-3, 1e-3]),  # --no-pretrained: every parameter at 1e-3
        ("mobilenetv3", {"lr": 5e-4, "backbone_lr_factor": 0.5}, [5e-4, 2.5e-4]),
    ],
)
def test_learning_rates_follow_where_the_weights_come_from(cache_dir, tmp_path, capsys, name, arguments,
                                                           expected_rates):
    run_train(model=name, data=cache_dir, out=tmp_path, epochs=1, **arguments)
    assert starting_rates(tmp_path, name) == pytest.approx(expected_rates)
    args = load_checkpoint(tmp_path / f"{name}.pt")["args"]
    assert args["lr"] == pytest.approx(expected_rates[0])
    assert args["backbone_lr_factor"] == pytest.approx(expected_rates[-1] / expected_rates[0])
    report = json.loads((tmp_path / f"{name}_test.json").read_text())
    printed = capsys.readouterr().out
    assert report["learning_rates"] in printed and f"{name}: Adam learning rates: " in printed
    groups = ["all"] if name == "unet" else ["head", "backbone"]
    for group, rate in zip(groups, expected_rates, strict=True):
        assert f"{group} {rate:g} (" in report["learning_rates"]


def test_a_local_weights_file_is_fine_tuned_at_fine_tuning_rates(cache_dir, tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "backbone.pth"
    torch.save(get_model("mobilenetv3", 59).backbone.state_dict(), weights)
    run_train(model="mobilenetv3", data=cache_dir, out=tmp_path, epochs=1, weights=str(weights))
    assert starting_rates(tmp_path, "mobilenetv3") == pytest.approx([1e-4, 1e-5])
    report = json.loads((tmp_path / "mobilenetv3_test.json").read_text())
    assert report["learning_rates"].startswith("head 0.0001 (") and ", backbone 1e-05 (" in report["learning_rates"]


def test_the_time_limit_stops_training_after_the_epoch_that_reaches_it(cache_dir, tmp_path, capsys):
    result = run_train(model="unet", data=cache_dir, out=tmp_path, epochs=5, time_limit_minutes=1e-6)["unet"]
    assert [row["epoch"] for row in result["history"]] == [1]
    assert "time limit reached" in capsys.readouterr().out
    # The test split is still evaluated, from the best (only) checkpoint.
    assert json.loads((tmp_path / "unet_test.json").read_text())["best_epoch"] == 1


def test_precision_and_augmentation_are_recorded(cache_dir, tmp_path):
    run_train(model="unet", data=cache_dir, out=tmp_path, epochs=1, precision="fp32", augment="flip")
    args = load_checkpoint(tmp_path / "unet.pt")["args"]
    assert (args["precision"], args["precision_used"], args["augment"]) == ("fp32", "fp32", "flip")
    report = json.loads((tmp_path / "unet_test.json").read_text())
    assert (report["precision"], report["augment"]) == ("fp32", "flip")
