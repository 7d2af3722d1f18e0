"""One configuration: an option written once in TrainingOptions reaches --help, train(**keywords), the
checks, <model>_config.json and the checkpoint; --config repeats a run or reads a recipe; evaluation builds no
optimizer."""

import json
from dataclasses import make_dataclass
from pathlib import Path

import pytest
import torch
from training_runs import (
    run_train,
    single_torch_thread,  # noqa: F401 (autouse fixture: tests run on one thread)
)

import train as train_script
from helpers.checkpoint import load_checkpoint
from helpers.errors import ClothVisionError
from trainers import option_lookup
from trainers import options as training_options
from trainers.command_line import get_args_parser, parse_given_options
from trainers.evaluation import evaluate_checkpoint


def test_a_field_added_to_the_options_reaches_help_train_and_the_config(cache_dir, tmp_path, monkeypatch,
                                                                       capsys):
    extended = make_dataclass(
        "TrainingOptions",
        [("label_smoothing_test", float,
          training_options.option(0.25, "a knob that exists only in this test", "optimisation",
                                  check=lambda value: value < 1, requirement="use less than 1"))],
        bases=(training_options.TrainingOptions,),
    )
    monkeypatch.setattr(training_options, "TrainingOptions", extended)
    help_text = get_args_parser().format_help()
    assert "--label-smoothing-test LABEL_SMOOTHING_TEST" in help_text
    assert "a knob that exists only in this test (default: 0.25)" in help_text
    assert parse_given_options(["--label-smoothing-test", "0.5"]) == {"label_smoothing_test": 0.5}
    with pytest.raises(ClothVisionError, match=r"^--label-smoothing-test 2: use less than 1$"):
        run_train(model="unet", data=cache_dir, out=tmp_path, epochs=1, label_smoothing_test=2.0)
    run_train(model="unet", data=cache_dir, out=tmp_path, epochs=1, label_smoothing_test=0.5)
    config = json.loads((tmp_path / "unet_config.json").read_text())
    assert config["options"]["label_smoothing_test"] == 0.5
    assert load_checkpoint(tmp_path / "unet.pt")["config"]["options"]["label_smoothing_test"] == 0.5


def test_each_run_writes_its_whole_config_and_the_checkpoint_records_it(cache_dir, tmp_path):
    run_train(model="unet", data=cache_dir, out=tmp_path, epochs=1, seed=3)
    config = json.loads((tmp_path / "unet_config.json").read_text())
    keywords = {option_lookup.keyword_of(field) for field in option_lookup.option_fields()}
    assert set(config["options"]) == keywords
    assert (config["options"]["model"], config["options"]["seed"], config["options"]["lr"]) == ("unet", 3, 1e-3)
    assert config["model_kwargs"] == {"base_width": 4}
    assert len(config["cache_meta_sha256"]) == 64
    assert config["versions"]["torch"] == str(torch.__version__) and config["versions"]["code"]
    assert load_checkpoint(tmp_path / "unet_last.pt")["config"] == config


def test_config_repeats_a_run_and_flags_beside_it_override_it(cache_dir, tmp_path):
    run_train(model="unet", data=cache_dir, out=tmp_path / "first", epochs=1, seed=5, augment="none")
    config_file = tmp_path / "first" / "unet_config.json"
    given = parse_given_options(["--config", str(config_file), "--out", str(tmp_path / "again"), "--epochs", "2"])
    assert (given["seed"], given["augment"], given["epochs"]) == (5, "none", 2)
    assert given["out"] == str(tmp_path / "again") and given["unet_base_width"] == 4
    repeated = train_script.main(["--config", str(config_file), "--out", str(tmp_path / "again")])
    first = json.loads((tmp_path / "first" / "unet_test.json").read_text())
    assert repeated["unet"]["test"]["confusion_matrix"] == first["confusion_matrix"]


RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def test_a_recipe_file_is_read_by_config_under_the_flags_given_beside_it(tmp_path):
    given = parse_given_options(["--config", str(RECIPES / "cpu-unet-poly.json"), "--epochs", "3"])
    assert given == {"model": "unet", "unet_base_width": 16, "epochs": 3, "patience": 200, "lr_schedule": "poly"}
    # Every recipe of the folder is a valid set of train() keywords.
    recipe_files = sorted(RECIPES.glob("*.json"))
    assert len(recipe_files) >= 12
    for recipe_file in recipe_files:
        options = option_lookup.make_options(**parse_given_options(["--config", str(recipe_file)]))
        option_lookup.check_option_values(options)
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps(["unet"]))
    with pytest.raises(ClothVisionError, match=f"^config {recipe} is not a JSON object of options: pass a recipe"):
        parse_given_options(["--config", str(recipe)])


def test_a_config_with_an_unknown_option_is_refused_in_one_line(tmp_path):
    config_file = tmp_path / "unet_config.json"
    config_file.write_text(json.dumps({"options": {"epochs": 2, "warp_speed": 9}}))
    with pytest.raises(ClothVisionError, match=f"^config {config_file} has options this train.py does not know "
                                               r"\(warp_speed\)"):
        parse_given_options(["--config", str(config_file)])
    with pytest.raises(ClothVisionError, match="not found"):
        parse_given_options(["--config", str(tmp_path / "absent.json")])


def test_train_refuses_an_unknown_keyword_naming_the_valid_ones():
    with pytest.raises(ClothVisionError, match="unknown training option warp_speed: use one of .*unet_base_width"):
        train_script.train(warp_speed=9)


def test_evaluating_a_checkpoint_builds_no_optimizer(cache_dir, tmp_path, monkeypatch):
    run_train(model="unet", data=cache_dir, out=tmp_path, epochs=1, precision="fp32")

    def no_optimizer(*arguments, **keywords):
        raise AssertionError("evaluate_checkpoint built an optimizer")

    monkeypatch.setattr(torch.optim, "Adam", no_optimizer)
    metrics = evaluate_checkpoint(tmp_path / "unet.pt", cache_dir, "test", device="cpu", precision="fp32")
    report = json.loads((tmp_path / "unet_test.json").read_text())
    assert metrics["confusion_matrix"] == report["confusion_matrix"]
