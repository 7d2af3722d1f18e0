"""Learning-rate schedules that end near zero, driven by the fraction of training done.

Progress t runs from 0 (first batch) to 1 (end of training); the caller computes it, as the fraction of
the planned optimizer steps taken or, for a time-limited run, the fraction of the time limit used, so a
time-limited run also ends near zero whatever the machine's speed. Schedules are stepped every batch.

- poly:   (1 − u)^0.9, the DeepLab / CE2P decay
- cosine: ½(1 + cos πu), the SCHP decay
- plateau: ReduceLROnPlateau on the val loss, the original project's; not a function of t, so it has no
  multiplier here and the trainer keeps torch's scheduler for it.

With a warm-up fraction w the rate first grows linearly from 0 to the base rate over t in [0, w] and then
decays over the rest, u = (t − w) / (1 − w), so the multiplier is continuous and still ends at the decay's
end point (0 for both).
"""

import math

import torch

PROGRESS_SCHEDULES = ("poly", "cosine")
LR_SCHEDULE_CHOICES = ("plateau", *PROGRESS_SCHEDULES)
POLY_POWER = 0.9


def warmup_fraction(warmup_epochs: float, epochs: int) -> float:
    """The share of an epoch-counted run spent warming up (lr_multiplier refuses a warm-up of the whole run);
    a time-limited run passes the share of its time limit instead."""
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
