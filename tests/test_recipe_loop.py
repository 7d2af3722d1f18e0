"""The recipe inside the loop: the learning rate each schedule sets over a run, exact resume under poly, the
soft-Jaccard loss option, and a run whose loss stops being a number ending at that step."""

import json

import pytest
import torch
from training_runs import (
    run_train,
    single_torch_thread,  # noqa: F401 (autouse fixture: tests run on one thread)
)

from helpers.checkpoint import load_checkpoint
from helpers.errors import ClothVisionError
from trainers import losses, training_epoch
from trainers import model_trainer as model_trainer_module

EPOCHS = 4


def rates_per_step(monkeypatch) -> list[float]:
    """Record the first group's learning rate at every optimizer step."""
    rates = []
    step = torch.optim.Adam.step

    def recording_step(optimizer, *arguments, **keywords):
        rates.append(optimizer.param_groups[0]["lr"])
        return step(optimizer, *arguments, **keywords)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    return rates


@pytest.mark.parametrize(("schedule", "middle", "last"), [
    ("plateau", 1e-3, 1e-3),
    # 8 train images, batch 4: 2 steps per epoch, 8 steps; the middle step (5th, t = 4/8) and the last (t = 7/8).
    ("poly", 1e-3 * 0.5 ** 0.9, 1e-3 * (1 / 8) ** 0.9),
    ("cosine", 1e-3 * 0.5, 1e-3 * 0.5 * (1 + torch.cos(torch.tensor(7 / 8 * torch.pi)).item())),
])
def test_each_schedule_sets_the_rate_at_the_start_middle_and_end(cache_dir, tmp_path, monkeypatch, schedule,
                                                                 middle, last):
    rates = rates_per_step(monkeypatch)
    history = run_train(model="unet", data=cache_dir, out=tmp_path, epochs=EPOCHS, lr_schedule=schedule,
                        patience=EPOCHS + 1)["unet"]["history"]
    assert len(rates) == 2 * EPOCHS
    assert rates[0] == pytest.approx(1e-3)
    assert (rates[4], rates[-1]) == (pytest.approx(middle), pytest.approx(last))
    assert [row["lr"] for row in history] == pytest.approx(rates[::2])
    report = json.loads((tmp_path / "unet_test.json").read_text())
    assert report["lr_schedule"] == schedule


def test_a_warm_up_grows_the_rate_from_zero(cache_dir, tmp_path, monkeypatch):
    rates = rates_per_step(monkeypatch)
    run_train(model="unet", data=cache_dir, out=tmp_path, epochs=EPOCHS, lr_schedule="poly", warmup_epochs=1)
    # Warm-up over t in [0, 1/4): steps at t = 0 and 1/8, then the decay from the base rate.
    assert rates[:3] == pytest.approx([0.0, 1e-3 * 0.5, 1e-3])


def without_seconds(history: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key != "seconds"} for row in history]


def test_poly_resumes_exactly(cache_dir, tmp_path, monkeypatch):
    whole = run_train(model="unet", data=cache_dir, out=tmp_path / "whole", epochs=EPOCHS, lr_schedule="poly")
    train_one_epoch = model_trainer_module.ModelTrainer.train_one_epoch

    def interrupted_in_epoch_three(trainer, epoch):
        if epoch == 3:
            raise KeyboardInterrupt
        return train_one_epoch(trainer, epoch)

    monkeypatch.setattr(model_trainer_module.ModelTrainer, "train_one_epoch", interrupted_in_epoch_three)
    with pytest.raises(KeyboardInterrupt):
        run_train(model="unet", data=cache_dir, out=tmp_path / "parts", epochs=EPOCHS, lr_schedule="poly")
    monkeypatch.setattr(model_trainer_module.ModelTrainer, "train_one_epoch", train_one_epoch)
    resumed = run_train(model="unet", data=cache_dir, out=tmp_path / "parts", epochs=EPOCHS, lr_schedule="poly",
                        resume=True)
    assert without_seconds(resumed["unet"]["history"]) == without_seconds(whole["unet"]["history"])
    whole_last = load_checkpoint(tmp_path / "whole" / "unet_last.pt")
    resumed_last = load_checkpoint(tmp_path / "parts" / "unet_last.pt")
    assert resumed_last["scheduler"] == whole_last["scheduler"] and resumed_last["scheduler"]["kind"] == "poly"
    for key, tensor in whole_last["state_dict"].items():
        assert torch.equal(resumed_last["state_dict"][key], tensor), key


def test_the_soft_jaccard_option_adds_its_term_to_the_training_loss(cache_dir, tmp_path, monkeypatch):
    calls = []
    term = losses.soft_jaccard_loss

    def counted(logits, labels, ignore_index=255):
        calls.append(logits.shape)
        return term(logits, labels, ignore_index)

    monkeypatch.setattr(training_epoch, "soft_jaccard_loss", counted)
    run_train(model="unet", data=cache_dir, out=tmp_path, epochs=1, loss="ce+jaccard")
    assert len(calls) == 2  # one per training step, none in evaluation
    assert json.loads((tmp_path / "unet_test.json").read_text())["loss"] > 0


def test_a_loss_turning_nan_stops_the_run_at_that_step_and_keeps_the_last_good_epoch(cache_dir, tmp_path,
                                                                                        monkeypatch):
    calls = {"steps": 0}
    term = losses.soft_jaccard_loss

    def nan_at_the_fourth_step(logits, labels, ignore_index=255):
        calls["steps"] += 1
        value = term(logits, labels, ignore_index)
        return value * float("nan") if calls["steps"] == 4 else value

    monkeypatch.setattr(training_epoch, "soft_jaccard_loss", nan_at_the_fourth_step)
    with pytest.raises(ClothVisionError, match=r"^unet: the training loss became nan at epoch 2, step 2; .*"
                                               r"--lr.*--precision fp32.*--resume"):
        run_train(model="unet", data=cache_dir, out=tmp_path, epochs=EPOCHS, loss="ce+jaccard")
    last = load_checkpoint(tmp_path / "unet_last.pt")
    assert last["epoch"] == 1
    assert all(torch.isfinite(tensor).all() for tensor in last["state_dict"].values() if tensor.is_floating_point())
