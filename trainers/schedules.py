"""Learning-rate schedules behind one interface, and the run's progress that drives them.

The loop calls every schedule the same way: step(t) before every batch, end_epoch(val_loss) after each
validation, state_dict()/load_state_dict() for the checkpoint.

- poly:   (1 − u)^0.9, the DeepLab / CE2P decay, stepped every batch
- cosine: ½(1 + cos πu), the SCHP decay, stepped every batch
- linear: 1 − u, stepped every batch: "Budgeted Training" (Li et al., ICLR 2020) found a linear decay to zero
  at the budget's end the most robust schedule for a fixed budget
- plateau: ReduceLROnPlateau on the val loss, the original project's; it ignores t and acts at end_epoch.

Progress t runs from 0 (first batch) to 1 (end of training): RunProgress gives the fraction of the planned
optimizer steps taken or, for a time-limited run when that is further along, the fraction of the time limit
used, so a time-limited run also ends at the decay's end point whatever the machine's speed.

With a warm-up fraction w the rate first grows linearly from 0 to the base rate over t in [0, w] and then
decays over the rest, u = (t − w) / (1 − w), so the multiplier is continuous and still ends at the decay's
end point (0 for all three).
"""

import math
import time

import torch

from trainers.distributed import value_of_rank_zero

PROGRESS_SCHEDULES = ("poly", "cosine", "linear")
LR_SCHEDULE_CHOICES = ("plateau", *PROGRESS_SCHEDULES)
POLY_POWER = 0.9
# A forward pass costs about a third of a training step (the backward pass about twice the forward): what a
# validation batch is estimated at before the first validation has been timed.
FORWARD_SHARE_OF_A_STEP = 1 / 3
PLATEAU_PATIENCE = 3
PLATEAU_FACTOR = 0.1
# What a full-size step is estimated at while progressive resizing still trains half-size batches: four times
# the pixels, so about four times the work. A CPU measured more (0.88 s against 0.15 s, U-net width 16, one
# thread), so the estimate of such a run stays on the low side until its full-size steps are timed.
FULL_SIZE_STEP_COST_RATIO = 4


def warmup_fraction(warmup_epochs: float, epochs: int) -> float:
    """The share of an epoch-counted run spent warming up (lr_multiplier refuses a warm-up of the whole run).
    A time-limited run has no known number of epochs to take a share of: train.py refuses --warmup-epochs
    with --time-limit-minutes."""
    return warmup_epochs / epochs


def lr_multiplier(kind: str, progress: float, warmup: float = 0.0) -> float:
    """The factor of the base learning rate at progress t in [0, 1] (clamped: a time-limited run's last batch
    can end past its limit) after a linear warm-up over the first `warmup` fraction of t."""
    if kind not in PROGRESS_SCHEDULES:
        raise ValueError(f"unknown progress schedule {kind!r}; choose one of {', '.join(PROGRESS_SCHEDULES)}")
    if not 0.0 <= warmup < 1.0:
        raise ValueError(f"the warm-up fraction must be in [0, 1), got {warmup}")
    progress = min(1.0, max(0.0, progress))
    if progress < warmup:
        return progress / warmup
    decayed = (progress - warmup) / (1.0 - warmup)
    if kind == "poly":
        return (1.0 - decayed) ** POLY_POWER
    if kind == "linear":
        return 1.0 - decayed
    return 0.5 * (1.0 + math.cos(math.pi * decayed))


class ProgressSchedule:
    """Sets every param group's lr to its base lr × lr_multiplier(kind, t, warmup) at each step(t).

    The base rates are the groups' rates when the schedule is built (a pretrained backbone keeps its smaller
    share); state_dict() carries them with the last progress, so a resumed run sets the same rates.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, kind: str, warmup: float = 0.0) -> None:
        lr_multiplier(kind, 0.0, warmup)  # refuses an unknown kind or warm-up now rather than at the first step
        self.optimizer = optimizer
        self.kind = kind
        self.warmup = warmup
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.progress = 0.0
        self.step(0.0)

    def step(self, progress: float) -> None:
        self.progress = progress
        multiplier = lr_multiplier(self.kind, progress, self.warmup)
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base_lr * multiplier

    def end_epoch(self, val_loss: float) -> None:
        """The rate follows t alone."""

    def state_dict(self) -> dict:
        return {"kind": self.kind, "warmup": self.warmup, "base_lrs": list(self.base_lrs),
                "progress": self.progress}

    def load_state_dict(self, state: dict) -> None:
        if len(state["base_lrs"]) != len(self.optimizer.param_groups):
            raise ValueError(f"the schedule state has {len(state['base_lrs'])} parameter groups, the optimizer "
                             f"{len(self.optimizer.param_groups)}")
        self.kind, self.warmup = state["kind"], state["warmup"]
        self.base_lrs = list(state["base_lrs"])
        self.step(state["progress"])


class PlateauSchedule:
    """The original's ReduceLROnPlateau (mode min on the val loss, patience 3, factor 0.1) behind the same
    interface; its state is torch's, so checkpoints keep the form they always had."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", patience=PLATEAU_PATIENCE, factor=PLATEAU_FACTOR
        )

    def step(self, progress: float) -> None:
        """The rate does not follow t."""

    def end_epoch(self, val_loss: float) -> None:
        self.scheduler.step(val_loss)

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state)


def build_schedule(optimizer: torch.optim.Optimizer, kind: str, warmup_epochs: float,
                   epochs: int) -> ProgressSchedule | PlateauSchedule:
    if kind == "plateau":
        return PlateauSchedule(optimizer)
    return ProgressSchedule(optimizer, kind, warmup_fraction(warmup_epochs, epochs))


class RunProgress:
    """Where a run stands: the fraction of its planned steps taken, and of its time limit used.

    The time counted is each epoch's training and validation, from the start of the epoch to the end of its
    validation (the history's 'seconds'); start-up, checkpoint writing and the final test are not counted. The
    share of the limit at a step includes the validation still to come, as long as the last one took, so the
    epoch that reaches the limit is cut at the step after which its validation ends there, and poly and
    cosine reach their end at that step. Under torchrun rank 0's clock decides for every rank.
    """

    def __init__(self, epochs: int, steps_per_epoch: int, time_limit_minutes: float, device: torch.device,
                 validation_steps: int = 0, half_size_until: float = 0.0):
        self.epochs, self.steps_per_epoch, self.device = epochs, steps_per_epoch, device
        self.validation_steps, self.half_size_until = validation_steps, half_size_until
        self.last_progress = 0.0  # at the last step taken: whether it trained at half size
        self.limit_seconds = 60 * time_limit_minutes
        self.used_seconds = 0.0  # by the finished epochs
        self.validation_seconds = 0.0  # the last validation's: what the next one is expected to take
        self.epoch_started = self.validation_started = self.first_step_ended = time.perf_counter()
        self.seconds_per_step = 0.0

    def resume(self, history: list[dict]) -> None:
        self.used_seconds = sum(row["seconds"] for row in history)

    def start_epoch(self) -> None:
        self.epoch_started = time.perf_counter()

    def start_validation(self) -> None:
        self.validation_started = time.perf_counter()

    def end_epoch(self) -> float:
        """After the epoch's validation: the epoch's seconds, now counted as used."""
        now = time.perf_counter()
        self.validation_seconds = now - self.validation_started
        self.used_seconds += now - self.epoch_started
        return now - self.epoch_started

    def at_step(self, epoch: int, step: int) -> float:
        """t before step `step` (1-based) of epoch `epoch`; 1 or more once the time limit is reached."""
        planned = ((epoch - 1) * self.steps_per_epoch + step - 1) / (self.epochs * self.steps_per_epoch)
        in_epoch = time.perf_counter() - self.epoch_started
        self.last_progress = max(planned, self.share_of_limit(self.used_seconds + in_epoch + self.validation_seconds))
        return self.last_progress

    def at_half_size(self) -> bool:
        """Whether the step at the last at_step() trains on half-size batches (--progressive-resize)."""
        return self.last_progress < self.half_size_until

    def remaining_seconds(self, epoch: int, steps_done: int) -> float:
        """Called after step `steps_done` of `epoch` once the device has finished it: the training and
        validation seconds left if every epoch runs, capped by the time limit. The seconds per step are this
        epoch's after its first step (which carries one-off costs; the first step alone is all there is to go
        by after it); a validation is estimated as long as the last one or, before any, as its batches at a
        third of a training step each. While progressive resizing trains half-size batches, the planned steps
        past its end and a validation not yet timed (always at full size) count FULL_SIZE_STEP_COST_RATIO
        half-size steps each."""
        now = time.perf_counter()
        if steps_done == 1:
            self.first_step_ended = now
        in_epoch = now - self.epoch_started
        self.seconds_per_step = in_epoch if steps_done == 1 else (now - self.first_step_ended) / (steps_done - 1)
        planned_steps = self.epochs * self.steps_per_epoch
        steps_left = planned_steps - ((epoch - 1) * self.steps_per_epoch + steps_done)
        full_size_steps, full_size_step = steps_left, self.seconds_per_step
        if self.at_half_size():  # the plan's last (1 − half_size_until) share is full size
            full_size_steps = min(steps_left, math.floor((1 - self.half_size_until) * planned_steps))
            full_size_step *= FULL_SIZE_STEP_COST_RATIO
        training = (steps_left - full_size_steps) * self.seconds_per_step + full_size_steps * full_size_step
        validation = self.validation_seconds or self.validation_steps * full_size_step * FORWARD_SHARE_OF_A_STEP
        remaining = training + (self.epochs - epoch + 1) * validation
        return min(remaining, max(self.limit_seconds - self.used_seconds - in_epoch, 0.0))

    def out_of_time(self) -> bool:
        """Between epochs: whether the next one's validation alone would end past the limit."""
        return self.share_of_limit(self.used_seconds + self.validation_seconds) >= 1.0

    def share_of_limit(self, seconds: float) -> float:
        if math.isinf(self.limit_seconds):
            return 0.0
        return value_of_rank_zero(seconds / self.limit_seconds, self.device)
