"""The whole run's estimate: printed after a model's first steps from its timed steps (every epoch, validation
included, capped by a time limit), and on a CPU past two hours one line naming the CPU recipe. A fake clock
makes every number independent of the machine."""

import json
import time
from pathlib import Path

import pytest
import torch
from training_runs import (
    fake_training_clock,
    run_train,
    single_torch_thread,  # noqa: F401 (autouse fixture: tests run on one thread)
)

from trainers.option_lookup import make_options
from trainers.run_estimate import CPU_RECIPE_COMMANDS, WholeRunEstimate, describe_duration
from trainers.schedules import RunProgress

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "cpu-hour.json"
SECONDS_PER_VALIDATION = 2.0


@pytest.mark.parametrize(("seconds_per_step", "estimate", "warned"), [
    # After step 3 of 3 epochs of 4 steps: 9 steps and 3 validations of 1 batch at a third of a step are left.
    (1.0, "estimated whole run 13 s, 10 s left (1 s a training step", False),
    (1000.0, "estimated whole run 3 h 37 min, 2 h 47 min left (1e+03 s a training step", True),
])
def test_the_whole_run_estimate_is_printed_after_the_third_step(cache_dir, tmp_path, monkeypatch, capsys,
                                                                seconds_per_step, estimate, warned):
    fake_training_clock(monkeypatch, seconds_per_step, SECONDS_PER_VALIDATION)
    run_train(model="unet", data=cache_dir, out=tmp_path, batch_size=2, epochs=3, patience=100)
    lines = [line for line in capsys.readouterr().out.splitlines() if "two hours" in line or "whole run" in line]
    assert lines[0] == (f"unet: {estimate}, every epoch and validation, capped by a time limit)")
    recipe_line = (f"unet: this run takes more than two hours on this CPU (it goes on); the CPU recipe trains a "
                   f"U-net in 60 minutes on 2 cores: `{CPU_RECIPE_COMMANDS[0]}` then `{CPU_RECIPE_COMMANDS[1]}`")
    assert lines[1:] == ([recipe_line] if warned else [])


def test_models_not_started_are_named_and_a_gpu_run_gets_no_cpu_advice(monkeypatch, capsys):
    now = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    whole_run = WholeRunEstimate(["unet", "resnet50"], "cuda")
    whole_run.start_model()
    now[0] = 100.0
    assert whole_run.observe("unet", 7300.0, 2.0, announce=False) == "2 h 02 min"
    assert capsys.readouterr().out == ""  # not yet: only after the third step
    assert whole_run.observe("unet", 7300.0, 2.0, announce=True) == "2 h 02 min"
    assert whole_run.observe("unet", 7000.0, 2.0, announce=True) == "1 h 57 min"  # printed once per model
    assert capsys.readouterr().out.splitlines() == [
        "unet: estimated whole run 2 h 03 min, 2 h 02 min left (2 s a training step, every epoch and validation, "
        "capped by a time limit; not counted yet: resnet50, each estimated when it starts)"
    ]


def test_a_time_limit_caps_the_models_remaining_time(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    progress = RunProgress(epochs=10, steps_per_epoch=100, time_limit_minutes=1, device=torch.device("cpu"),
                           validation_steps=30)
    progress.start_epoch()
    now[0] = 3.0
    assert progress.remaining_seconds(epoch=1, steps_done=1) == 57.0  # 999 steps of 3 s: the limit's 57 s
    now[0] = 5.0
    assert progress.remaining_seconds(epoch=1, steps_done=2) == 55.0
    assert progress.seconds_per_step == 2.0
    unlimited = RunProgress(epochs=2, steps_per_epoch=10, time_limit_minutes=float("inf"), device=torch.device("cpu"),
                            validation_steps=3)
    unlimited.start_epoch()
    now[0] += 4.0
    unlimited.remaining_seconds(epoch=1, steps_done=1)
    now[0] += 2.0  # the second step: 2 s, the first one's 4 s left out
    # 18 steps of 2 s, and 2 validations of 3 batches at a third of a step each
    assert unlimited.remaining_seconds(epoch=1, steps_done=2) == pytest.approx(18 * 2 + 2 * 3 * 2 / 3)


def test_while_progressive_resizing_trains_at_half_size_the_full_size_steps_count_four_half_size_ones(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    progress = RunProgress(epochs=2, steps_per_epoch=10, time_limit_minutes=float("inf"), device=torch.device("cpu"),
                           validation_steps=3, half_size_until=0.5)
    progress.start_epoch()
    for step in (1, 2):  # the first step 4 s, the second 2 s: both at half size (t = 0 and 0.05)
        assert progress.at_step(epoch=1, step=step) < 0.5
        now[0] += 4.0 / step
        remaining = progress.remaining_seconds(epoch=1, steps_done=step)
    # 18 steps left: 8 more at half size (2 s), the plan's last 10 at full size (4 × 2 s); 2 validations of
    # 3 full-size batches at a third of a full-size step each.
    assert remaining == pytest.approx(8 * 2 + 10 * 8 + 2 * 3 * 8 / 3)
    progress.end_epoch()
    progress.start_epoch()
    now[0] += 1.0
    assert progress.at_step(epoch=2, step=1) == 0.5  # from here on every step is at full size, and timed as one
    now[0] += 8.0
    progress.remaining_seconds(epoch=2, steps_done=1)
    now[0] += 8.0
    assert progress.remaining_seconds(epoch=2, steps_done=2) == pytest.approx(8 * 8 + progress.validation_seconds)

def test_durations_read_as_seconds_minutes_or_hours():
    assert [describe_duration(seconds) for seconds in (45, 59.4, 720, 3599, 3600, 230_700)] == [
        "45 s", "59 s", "12 min", "1 h 00 min", "1 h 00 min", "64 h 05 min"]


def test_the_cpu_recipe_is_a_60_minute_unet_at_240x144_with_the_levers_val_chose():
    keywords = json.loads(RECIPE.read_text(encoding="utf-8"))
    assert "chosen on val" in keywords.pop("description")
    options = make_options(**keywords)
    assert (options.model, options.unet_base_width, options.lr_schedule, options.loss, options.augment) == (
        "unet", 16, "plateau", "ce", "flip")
    assert (options.class_weights, options.class_weight_offset, options.progressive_resize) == (
        "inverse-log-freq", 1.2, 0.5)
    assert options.time_limit_minutes == 60 and options.patience >= options.epochs
    assert "--size 240 144 --out data/processed_240x144" in CPU_RECIPE_COMMANDS[0]
    assert f"--config recipes/{RECIPE.name} --data data/processed_240x144" in CPU_RECIPE_COMMANDS[1]
