"""One epoch as a plain function, as in torchvision's references: train_one_epoch() is one pass over the train
split with everything it uses passed in (network, criterion, optimizer, loader, schedule, progress, precision,
weight average); trainers.model_trainer.ModelTrainer builds those and calls it once per epoch. WeightAverage is
the moving average of the weights (--ema-decay) that a step updates.
"""

import copy

import torch
from torch import nn
from tqdm import tqdm

from dataset import DeviceBatchLoader
from helpers.batch_augmentation import IGNORE_INDEX, half_size_batch
from helpers.devices import Precision
from trainers.distributed import all_reduce_sum
from trainers.losses import soft_jaccard_loss, stop_if_any_step_not_finite
from trainers.metrics import accumulator_dtype_for, correct_pixels, loss_weight_of
from trainers.run_estimate import FIRST_ESTIMATE_STEP, WholeRunEstimate
from trainers.schedules import PlateauSchedule, ProgressSchedule, RunProgress

# The live loss in the progress bar and the non-finite check cost a device synchronisation; doing them every
# few steps keeps the GPU queue full.
PROGRESS_REFRESH_STEPS = 10


class WeightAverage:
    """An exponential moving average of a model's weights, updated after every optimizer step.

    The decay warms up as min(decay, (1 + n) / (10 + n)) after n updates (as TensorFlow's
    ExponentialMovingAverage with num_updates): a plain 0.999 average would still hold 37 % of the random
    initial weights after 1000 steps, the length of a short CPU run. BatchNorm's running statistics are
    averaged with the same decay, as torchvision's and timm's averages do: the averaged weights mix the last
    ~1/(1 − decay) steps' weights, and the averaged statistics mix the statistics of the same steps (copying
    the latest ones would pair them with weights they were not measured on). Integer buffers (BatchNorm's
    batch counter) are copied. The average is rank-local: under DDP every rank applies the same updates to the
    same weights, and rank 0's BatchNorm statistics are copied to every rank before each evaluation.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.source, self.decay, self.updates = model, decay, 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for averaged, current in zip(self.model.state_dict().values(), self.source.state_dict().values(),
                                     strict=True):
            if averaged.is_floating_point():
                averaged.lerp_(current, 1 - decay)
            else:
                averaged.copy_(current)


def train_one_epoch(network: nn.Module, criterion: nn.CrossEntropyLoss, optimizer: torch.optim.Optimizer,
                    loader: DeviceBatchLoader, schedule: ProgressSchedule | PlateauSchedule, run_progress: RunProgress,
                    precision: Precision, epoch: int, loss_kind: str = "ce", name: str = "model",
                    show_progress: bool = True, weight_average: WeightAverage | None = None,
                    whole_run: WholeRunEstimate | None = None) -> dict:
    """One pass over this rank's share of the train split, with `network` already in training mode.

    Steps taken before the run's progress reaches run_progress.half_size_until (run_progress.at_half_size()) train
    on the batch at half size (progressive resizing: cheap early steps learn the coarse shapes, the later ones at
    full size).
    whole_run, when given, is told the model's remaining time after its timed steps and keeps the whole run's
    ETA in the progress bar.

    Before each step the schedule gets the run's progress; past the time limit the epoch ends there (after
    its first step, so that it has a loss). A NaN or infinite loss ends the run on every rank (looked at every
    few steps). Returns the loss and pixel accuracy over all ranks, the steps taken and the rates of the
    epoch's first and last steps (of the first parameter group) and how many of its steps were at half size."""
    device, class_weights = loader.device, criterion.weight
    loader.set_epoch(epoch)
    accumulator = accumulator_dtype_for(device)
    # loss sum, loss weight, correct pixels, pixels: one tensor, one all-reduce.
    totals = torch.zeros(4, dtype=accumulator, device=device)
    # Non-finite steps so far and the first of them (trainers.losses.stop_if_any_step_not_finite).
    non_finite = torch.zeros(2, dtype=accumulator, device=device)
    rates, half_size_steps = [], 0
    bar = tqdm(loader, total=len(loader), desc=f"{name} epoch {epoch}/{run_progress.epochs}", leave=False,
               dynamic_ncols=True, disable=None if show_progress else True)
    for step, (images, labels) in enumerate(bar, start=1):
        progress = run_progress.at_step(epoch, step)
        if step > 1 and progress >= 1.0:  # the time limit: this epoch's validation ends at it
            break
        schedule.step(progress)
        if run_progress.at_half_size():
            images, labels = half_size_batch(images, labels)
            half_size_steps += 1
        rates.append(optimizer.param_groups[0]["lr"])
        with precision.autocast():
            logits = network(precision.place(images, device))
        loss_sum = criterion(logits.float(), labels)
        valid = labels != IGNORE_INDEX
        loss_weight = loss_weight_of(labels, class_weights, accumulator)
        loss = loss_sum / loss_weight
        if loss_kind == "ce+jaccard":
            loss = loss + soft_jaccard_loss(logits, labels, IGNORE_INDEX)
        with torch.no_grad():
            finite = torch.isfinite(loss)
            non_finite[1] = torch.where((non_finite[0] == 0) & ~finite, step, non_finite[1])
            non_finite[0] += ~finite
        refresh = step % PROGRESS_REFRESH_STEPS == 0 or step == len(loader)
        if refresh:
            stop_if_any_step_not_finite(non_finite, name, epoch, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if weight_average is not None:
            weight_average.update()
        with torch.no_grad():
            totals += torch.stack([loss_sum.detach().to(accumulator), loss_weight,
                                   correct_pixels(logits, labels, valid).to(accumulator), valid.sum(dtype=accumulator)])
        if (refresh or step in (1, FIRST_ESTIMATE_STEP)) and (whole_run is not None or not bar.disable):
            running_loss = (totals[0] / totals[1]).item()  # waits for the device: the clock that follows is true
            postfix = {"loss": f"{running_loss:.4f}"}
            if whole_run is not None:
                remaining = run_progress.remaining_seconds(epoch, step)
                announce = step >= FIRST_ESTIMATE_STEP or step == len(loader)
                postfix["run_eta"] = whole_run.observe(name, remaining, run_progress.seconds_per_step, announce)
            if not bar.disable:
                bar.set_postfix(postfix, refresh=False)
    bar.close()
    stop_if_any_step_not_finite(non_finite, name, epoch, len(rates))  # the steps since the last look, if cut
    loss_sum, loss_weight, correct, pixels = all_reduce_sum(totals).tolist()
    return {"loss": loss_sum / loss_weight, "accuracy": correct / pixels, "steps": len(rates),
            "first_lr": rates[0], "last_lr": rates[-1], "half_size_steps": half_size_steps}
