"""Equal compute that is equal: a time-limited run uses its whole budget (each epoch's training and
validation counted), cuts the epoch that reaches the limit, and ends poly at that step; the minutes used
and the final rate are in the run's files. A fake clock makes every number independent of the machine."""

import csv
import json

import pytest
from training_runs import (
    fake_training_clock,
    run_train,
    single_torch_thread,  # noqa: F401 (autouse fixture: tests run on one thread)
)

from helpers.checkpoint import load_checkpoint

SECONDS_PER_STEP = 1.0
SECONDS_PER_VALIDATION = 2.0
# 8 train images in batches of 2: 4 steps and one validation, 6 fake seconds an epoch. After 10 epochs
# (60 s) the 11th still fits; its 4th step would end, with its validation, past 64.5 s.
LIMIT_MINUTES = 64.5 / 60


@pytest.fixture
def fake_clock(monkeypatch) -> list[float]:
    """The rates of every step, under a clock advanced only by optimizer steps and validations."""
    return fake_training_clock(monkeypatch, SECONDS_PER_STEP, SECONDS_PER_VALIDATION)


def test_a_time_limited_run_uses_its_budget_and_ends_its_schedule_at_its_last_step(cache_dir, tmp_path,
                                                                                    fake_clock):
    result = run_train(model="unet", data=cache_dir, out=tmp_path, batch_size=2, lr_schedule="poly",
                       time_limit_minutes=LIMIT_MINUTES, patience=100)["unet"]
    history = result["history"]
    assert len(history) == 11 and len(fake_clock) == 10 * 4 + 3  # the 11th epoch cut after 3 steps
    with open(tmp_path / "unet.csv") as file:
        used_seconds = sum(float(row["seconds"]) for row in csv.DictReader(file))
    assert used_seconds == pytest.approx(65.0)  # 43 steps and 11 validations
    assert abs(used_seconds / (60 * LIMIT_MINUTES) - 1) <= 0.05
    # The last step ran at t = 64 / 64.5 of the limit: poly at (0.5 / 64.5)^0.9 of the base rate.
    assert fake_clock[-1] == pytest.approx(1e-3 * (0.5 / 64.5) ** 0.9)
    assert fake_clock[-1] <= 0.05 * 1e-3
    report = json.loads((tmp_path / "unet_test.json").read_text())
    assert report["final_lr"] == load_checkpoint(tmp_path / "unet_last.pt")["final_lr"] == fake_clock[-1]
    assert json.loads((tmp_path / "unet_config.json").read_text())["options"]["time_limit_minutes"] == LIMIT_MINUTES
