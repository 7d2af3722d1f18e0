import math

import pytest
import torch

from trainers.schedules import LR_SCHEDULE_CHOICES, ProgressSchedule, lr_multiplier, warmup_fraction


def adam_with_two_groups(backbone_lr: float = 1e-4, head_lr: float = 1e-3) -> torch.optim.Adam:
    backbone, head = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    return torch.optim.Adam([{"params": backbone.parameters(), "lr": backbone_lr},
                             {"params": head.parameters(), "lr": head_lr}])


def test_schedule_choices_keep_the_plateau_scheduler_available():
    assert LR_SCHEDULE_CHOICES == ("plateau", "poly", "cosine", "linear")


@pytest.mark.parametrize(("kind", "middle"), [("poly", 0.5 ** 0.9), ("cosine", 0.5), ("linear", 0.5)])
def test_rate_at_start_middle_and_end(kind, middle):
    assert lr_multiplier(kind, 0.0) == 1.0
    assert lr_multiplier(kind, 0.5) == pytest.approx(middle)
    assert lr_multiplier(kind, 1.0) == pytest.approx(0.0, abs=1e-12)


def test_poly_and_cosine_differ_between_the_ends():
    # poly decays faster early, cosine keeps a high rate longer.
    assert lr_multiplier("poly", 0.25) == pytest.approx(0.75 ** 0.9)
    assert lr_multiplier("cosine", 0.25) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_multiplier("cosine", 0.25) > lr_multiplier("poly", 0.25)


def test_linear_falls_by_the_same_amount_every_step_to_zero_at_the_end():
    assert [lr_multiplier("linear", t) for t in (0.1, 0.25, 0.9)] == pytest.approx([0.9, 0.75, 0.1])
    assert lr_multiplier("linear", 1.3) == 0.0
    # After a warm-up over the first 20 %, the rest decays linearly: half-way through it at t = 0.6.
    assert lr_multiplier("linear", 0.6, warmup=0.2) == pytest.approx(0.5)


def test_progress_past_the_time_limit_is_clamped_to_the_end():
    assert lr_multiplier("poly", 1.07) == pytest.approx(0.0, abs=1e-12)
    assert lr_multiplier("cosine", -0.1) == 1.0


@pytest.mark.parametrize("kind", ["poly", "cosine"])
def test_warm_up_ramps_linearly_then_decays_from_the_base_rate(kind):
    assert [lr_multiplier(kind, t, warmup=0.2) for t in (0.0, 0.05, 0.1)] == pytest.approx([0.0, 0.25, 0.5])
    assert lr_multiplier(kind, 0.2, warmup=0.2) == 1.0
    # After the warm-up the decay runs over the remaining 80 %: its middle is at t = 0.6.
    assert lr_multiplier(kind, 0.6, warmup=0.2) == pytest.approx(lr_multiplier(kind, 0.5))
    assert lr_multiplier(kind, 1.0, warmup=0.2) == pytest.approx(0.0, abs=1e-12)


def test_warm_up_epochs_become_a_fraction_of_the_run():
    assert warmup_fraction(2, 20) == 0.1
    assert warmup_fraction(0, 20) == 0.0


def test_unknown_kind_and_bad_warm_up_are_refused():
    with pytest.raises(ValueError, match="unknown progress schedule 'plateau'"):
        lr_multiplier("plateau", 0.5)
    with pytest.raises(ValueError, match="warm-up fraction"):
        ProgressSchedule(adam_with_two_groups(), "poly", warmup=1.0)


def test_schedule_scales_every_group_from_its_own_base_rate():
    optimizer = adam_with_two_groups()
    schedule = ProgressSchedule(optimizer, "cosine", warmup=0.1)
    assert [group["lr"] for group in optimizer.param_groups] == [0.0, 0.0]  # warm-up starts at zero
    schedule.step(0.55)
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([0.5e-4, 0.5e-3])
    schedule.step(1.0)
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([0.0, 0.0], abs=1e-18)


def test_state_round_trip_resumes_with_the_same_rates():
    optimizer = adam_with_two_groups()
    schedule = ProgressSchedule(optimizer, "poly", warmup=0.1)
    schedule.step(0.4)
    state, rates = schedule.state_dict(), [group["lr"] for group in optimizer.param_groups]
    # A resumed run builds its optimizer at the base rates and its schedule with options that may differ.
    resumed_optimizer = adam_with_two_groups()
    resumed = ProgressSchedule(resumed_optimizer, "cosine")
    resumed.load_state_dict(state)
    assert [group["lr"] for group in resumed_optimizer.param_groups] == rates
    schedule.step(0.7)
    resumed.step(0.7)
    assert [group["lr"] for group in resumed_optimizer.param_groups] == [
        group["lr"] for group in optimizer.param_groups]
    assert resumed.state_dict() == schedule.state_dict()


def test_state_of_another_optimizer_layout_is_refused():
    state = ProgressSchedule(adam_with_two_groups(), "poly").state_dict()
    single = torch.optim.Adam(torch.nn.Linear(2, 1).parameters(), lr=1e-3)
    with pytest.raises(ValueError, match="2 parameter groups, the optimizer 1"):
        ProgressSchedule(single, "poly").load_state_dict(state)
