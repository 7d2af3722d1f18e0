"""train_one_epoch is a plain function: everything it uses is passed in, and it reports the steps it took and
the rates of its first and last steps; both schedules are called the same way."""

import pytest
import torch
from torch import nn
from training_runs import single_torch_thread  # noqa: F401 (autouse fixture: tests run on one thread)

from dataset import DeviceBatchLoader, load_cache
from helpers.batch_augmentation import IGNORE_INDEX
from helpers.devices import resolve_precision
from trainers.schedules import PlateauSchedule, ProgressSchedule, RunProgress, build_schedule
from trainers.training_epoch import train_one_epoch

EPOCHS = 2


def one_epoch(cache_dir, schedule_kind: str, time_limit_minutes: float = float("inf"), epoch: int = 2,
              network: nn.Module | None = None, half_size_until: float = 0.0) -> dict:
    torch.manual_seed(0)
    network = network or nn.Conv2d(3, 59, kernel_size=1)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    loader = DeviceBatchLoader(load_cache(cache_dir), "train", 2, torch.device("cpu"), shuffle=True, seed=0)
    criterion = nn.CrossEntropyLoss(reduction="sum", ignore_index=IGNORE_INDEX)
    progress = RunProgress(EPOCHS, len(loader), time_limit_minutes, torch.device("cpu"),
                           half_size_until=half_size_until)
    return train_one_epoch(network, criterion, optimizer, loader, build_schedule(optimizer, schedule_kind, 0, EPOCHS),
                           progress, resolve_precision("fp32", torch.device("cpu")), epoch=epoch, show_progress=False)


def test_the_second_of_two_poly_epochs_steps_from_the_middle_to_the_last_step(cache_dir):
    metrics = one_epoch(cache_dir, "poly")
    assert metrics["steps"] == 4  # 8 train images in batches of 2
    assert metrics["first_lr"] == pytest.approx(1e-3 * 0.5 ** 0.9)
    assert metrics["last_lr"] == pytest.approx(1e-3 * (1 / 8) ** 0.9)
    assert 0 < metrics["loss"] < 10 and 0 <= metrics["accuracy"] <= 1


def test_an_epoch_past_the_time_limit_ends_after_its_first_step_at_the_end_of_the_schedule(cache_dir):
    metrics = one_epoch(cache_dir, "cosine", time_limit_minutes=1e-9)
    assert metrics["steps"] == 1
    assert metrics["first_lr"] == metrics["last_lr"] == pytest.approx(0.0, abs=1e-12)


def test_progressive_resizing_halves_the_batches_of_the_first_share_of_the_run(cache_dir):
    network = nn.Conv2d(3, 59, kernel_size=1)
    sizes = []
    network.register_forward_hook(lambda module, inputs, output: sizes.append(tuple(output.shape[-2:])))
    # 8 steps in the run: t = 0 and 1/8 come before 0.25, t = 2/8 and 3/8 do not.
    metrics = one_epoch(cache_dir, "linear", epoch=1, network=network, half_size_until=0.25)
    assert sizes == [(16, 16), (16, 16), (32, 32), (32, 32)]
    assert (metrics["steps"], metrics["half_size_steps"]) == (4, 2) and 0 < metrics["loss"] < 10


def test_plateau_and_progress_schedules_are_called_the_same_way():
    network = nn.Linear(2, 1)
    optimizers = [torch.optim.Adam(network.parameters(), lr=1e-3) for _ in range(2)]
    plateau, poly = PlateauSchedule(optimizers[0]), ProgressSchedule(optimizers[1], "poly")
    for schedule in (plateau, poly):
        schedule.step(0.5)
        for _ in range(5):  # no improvement after the first: patience 3 runs out at the fifth
            schedule.end_epoch(1.0)
    assert optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-4)
    assert optimizers[1].param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5 ** 0.9)
    # The plateau state is torch's own, as in checkpoints written before this interface.
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(torch.optim.Adam(network.parameters(), lr=1e-3),
                                                           mode="min", patience=3, factor=0.1)
    assert plateau.state_dict().keys() == reference.state_dict().keys()
    plateau.load_state_dict(reference.state_dict())
    assert plateau.scheduler.num_bad_epochs == 0
