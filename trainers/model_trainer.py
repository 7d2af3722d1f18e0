"""ModelTrainer: the one training loop of the project.

Per epoch: train on the train split (augmented on the device; the poly or cosine learning rate set before
every batch, a non-finite loss ending the run), evaluate the whole val split from one confusion matrix, step
ReduceLROnPlateau on the val loss when that is the schedule, ask the EarlyStopper, append a history row, save
the best checkpoint (highest val mIoU) and the last one (for --resume). After the last epoch the best
checkpoint is evaluated on the test split at the annotations' own size.

Choices worth knowing:
- The best checkpoint is the epoch of highest val mIoU, the metric the project reports; the plateau
  schedule and the early stopper follow the val loss, as in the original project.
- Losses over a split are sum(weight × pixel loss) / sum(weight) over all its pixels, the same
  weighted mean CrossEntropyLoss takes over a batch, so the epoch loss does not depend on batch size.
- Every rank seeds torch identically and consumes random numbers identically, so the RNG state rank 0
  saves is every rank's, and a resumed run continues exactly where the interrupted one stopped.
- The raw model is kept for state_dict(); the torch.compile and DistributedDataParallel wrappers only
  run it, so checkpoints never carry their '_orig_mod.' or 'module.' prefixes.
"""

import contextlib
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from dataset import IGNORE_INDEX, Cache, DeviceBatchLoader
from early_stopper import EarlyStopper
from evaluation.garment_groups import garment_groups_for
from helpers.devices import resolve_precision
from trainers.checkpointing import CheckpointingMixin
from trainers.distributed import (
    SINGLE_PROCESS,
    DistributedContext,
    all_reduce_sum,
    copy_buffers_from_rank_zero,
    decision_of_rank_zero,
)
from trainers.losses import check_finite_loss, soft_jaccard_loss
from trainers.metrics import accumulator_dtype_for, correct_pixels, loss_weight_of
from trainers.options import TrainingOptions, class_weights_from_counts, with_learning_rates
from trainers.run_config import run_config
from trainers.schedules import ProgressSchedule, warmup_fraction
from trainers.scoring import evaluate

# The live loss in the progress bar costs a device synchronisation; refreshing it every few steps keeps
# the GPU queue full.
PROGRESS_REFRESH_STEPS = 10
LR_SCHEDULER_PATIENCE = 3
LR_SCHEDULER_FACTOR = 0.1


class ModelTrainer(CheckpointingMixin):
    """Trains a model whose forward pass returns logits N×C×H×W."""

    def __init__(
        self,
        model: nn.Module,
        model_name: str,
        model_kwargs: dict,
        cache: Cache,
        device: torch.device,
        output_dir: str | Path,
        options: TrainingOptions,
        distributed: DistributedContext = SINGLE_PROCESS,
        config: dict | None = None,
    ):
        self.model_name, self.model_kwargs = model_name, dict(model_kwargs)
        self.cache, self.meta, self.class_names = cache, cache.meta, cache.class_names
        # Matched now: a class without a garment group stops the run before training, not at its test report.
        self.garment_groups = garment_groups_for(self.class_names)
        options = with_learning_rates(options, model_name)
        self.device, self.options, self.distributed = device, options, distributed
        self.output_dir = Path(output_dir)
        # The run's options and provenance (trainers.run_config), kept in every checkpoint.
        self.config = run_config(options, model_kwargs, cache.meta) if config is None else config
        if distributed.enabled and options.sync_batchnorm:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.precision = resolve_precision(options.precision, device)
        self.model = self.precision.place(model, device)
        # Compiled once; the same compiled module runs training (inside DDP) and evaluation.
        self.forward_module = torch.compile(self.model) if options.compile_model else self.model
        self.training_network: nn.Module = self.forward_module
        self.optimizer = torch.optim.Adam(self.parameter_groups())
        if options.lr_schedule == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, mode="min", patience=LR_SCHEDULER_PATIENCE, factor=LR_SCHEDULER_FACTOR
            )
        else:
            self.scheduler = ProgressSchedule(self.optimizer, options.lr_schedule,
                                              warmup_fraction(options.warmup_epochs, options.epochs))
        self.early_stopper = EarlyStopper(options.patience, options.min_delta, options.max_loss_diff)
        weights = class_weights_from_counts(self.meta["train_class_pixel_counts"], options.class_weights)
        self.class_weights = None if weights is None else weights.to(device)
        self.criterion = nn.CrossEntropyLoss(weight=self.class_weights, reduction="sum", ignore_index=IGNORE_INDEX)
        self.accumulator_dtype = accumulator_dtype_for(device)
        self.loaders = {
            split: DeviceBatchLoader(
                cache,
                split,
                options.batch_size,
                device,
                shuffle=split == "train",
                augment=options.augment if split == "train" else "none",
                seed=options.seed,
                rank=distributed.rank,
                world_size=distributed.world_size,
                drop_last=split == "train",
            )
            for split in ("train", "val", "test")
        }
        self.history: list[dict] = []
        self.best_epoch = 0
        # What the run starts with, for the logs, the test report and summary.md.
        self.starting_learning_rates = self.describe_learning_rates()
        self.wrapped_parameters: frozenset[str] | None = None

    # --- what TransferLearningTrainer overrides -------------------------------------------------------

    def parameter_groups(self) -> list[dict]:
        """Adam's parameter groups, each named; the first group's learning rate is the one the history
        reports."""
        return [{"name": "all", "params": list(self.model.parameters()), "lr": self.options.learning_rate}]

    def prepare_epoch(self, epoch: int) -> None:
        """Called before each training epoch (1-based)."""

    def set_training_mode(self) -> None:
        self.training_network.train()

    # --- the loop -------------------------------------------------------------------------------------

    def wrap_for_training(self) -> None:
        """Under torchrun, wrap the model in DistributedDataParallel for the parameters that require
        gradients now. DDP registers that set when it is built, so it is built again only when the set has
        changed (a backbone frozen or unfrozen), at the start of a training epoch."""
        if not self.distributed.enabled:
            return
        trainable = frozenset(name for name, parameter in self.model.named_parameters() if parameter.requires_grad)
        if trainable != self.wrapped_parameters:
            self.wrapped_parameters = trainable
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.training_network = DistributedDataParallel(self.forward_module, device_ids=device_ids)

    @property
    def best_checkpoint_path(self) -> Path:
        return self.output_dir / f"{self.model_name}.pt"

    @property
    def last_checkpoint_path(self) -> Path:
        return self.output_dir / f"{self.model_name}_last.pt"

    def describe_learning_rates(self) -> str:
        """Each parameter group's learning rate now, e.g. 'head 0.001 (4.20 M parameters), backbone ...'."""
        return ", ".join(
            f"{group['name']} {group['lr']:g} ({sum(parameter.numel() for parameter in group['params']) / 1e6:.2f} M "
            "parameters)"
            for group in self.optimizer.param_groups
        )

    def log(self, message: str) -> None:
        if self.distributed.is_main:
            tqdm.write(message)

    def autocast(self) -> contextlib.AbstractContextManager:
        return self.precision.autocast()

    def prepare_images(self, images: torch.Tensor) -> torch.Tensor:
        return self.precision.place(images, self.device)

    def train_one_epoch(self, epoch: int) -> dict:
        """One pass over this rank's share of the train split; loss and pixel accuracy over all ranks."""
        self.wrap_for_training()
        self.set_training_mode()
        loader = self.loaders["train"]
        loader.set_epoch(epoch)
        # loss sum, loss weight, correct pixels, pixels: one tensor, one all-reduce.
        totals = torch.zeros(4, dtype=self.accumulator_dtype, device=self.device)
        # Non-finite steps so far and the first of them, kept on the device: looked at every few steps, so
        # that a GPU is not made to wait each step, and summed over the ranks, so that all of them stop.
        non_finite = torch.zeros(2, dtype=self.accumulator_dtype, device=self.device)
        epoch_started = time.perf_counter()
        progress = tqdm(
            loader,
            total=len(loader),
            desc=f"{self.model_name} epoch {epoch}/{self.options.epochs}",
            leave=False,
            dynamic_ncols=True,
            disable=None if self.distributed.is_main and self.options.show_progress else True,
        )
        for step, (images, labels) in enumerate(progress, start=1):
            if isinstance(self.scheduler, ProgressSchedule):
                self.scheduler.step(self.training_progress(epoch, step, time.perf_counter() - epoch_started))
            with self.autocast():
                logits = self.training_network(self.prepare_images(images))
            loss_sum = self.criterion(logits.float(), labels)
            valid = labels != IGNORE_INDEX
            loss_weight = loss_weight_of(labels, self.class_weights, self.accumulator_dtype)
            loss = loss_sum / loss_weight
            if self.options.loss == "ce+jaccard":
                loss = loss + soft_jaccard_loss(logits, labels, IGNORE_INDEX)
            with torch.no_grad():
                finite = torch.isfinite(loss)
                non_finite[1] = torch.where((non_finite[0] == 0) & ~finite, step, non_finite[1])
                non_finite[0] += ~finite
            if step % PROGRESS_REFRESH_STEPS == 0 or step == len(loader):
                self.stop_if_not_finite(non_finite, epoch, step)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            with torch.no_grad():
                totals += torch.stack(
                    [
                        loss_sum.detach().to(totals.dtype),
                        loss_weight,
                        correct_pixels(logits, labels, valid).to(totals.dtype),
                        valid.sum(dtype=totals.dtype),
                    ]
                )
            if not progress.disable and (step % PROGRESS_REFRESH_STEPS == 0 or step == len(loader)):
                progress.set_postfix(loss=f"{(totals[0] / totals[1]).item():.4f}", refresh=False)
        progress.close()
        loss_sum, loss_weight, correct, pixels = all_reduce_sum(totals).tolist()
        return {"loss": loss_sum / loss_weight, "accuracy": correct / pixels}

    def evaluate(self, split: str) -> dict:
        """Loss and confusion-matrix metrics over the whole split (all ranks' shares together), per class and
        per garment group."""
        copy_buffers_from_rank_zero(self.model)
        return evaluate(self.forward_module, self.loaders[split], self.precision, self.garment_groups,
                        self.class_weights)

    def training_progress(self, epoch: int, step: int, epoch_seconds: float) -> float:
        """t in [0, 1] at this step for the poly and cosine schedules: the fraction of the planned steps taken,
        or of the time limit used when that is further along (so a time-limited run ends near 0 too)."""
        steps_per_epoch = len(self.loaders["train"])
        done = ((epoch - 1) * steps_per_epoch + step - 1) / (self.options.epochs * steps_per_epoch)
        elapsed = sum(row["seconds"] for row in self.history) + epoch_seconds
        return max(done, elapsed / (60 * self.options.time_limit_minutes))

    def stop_if_not_finite(self, non_finite: torch.Tensor, epoch: int, step: int) -> None:
        """End the run, on every rank, once a training loss was NaN or infinite: the checkpoints of the last
        finished epoch are untouched, and --resume continues from them."""
        local_first = int(non_finite[1].item())
        if all_reduce_sum(non_finite.clone())[0].item() > 0:
            check_finite_loss(float("nan"), self.model_name, epoch, local_first or step)

    def fit(self, start_epoch: int = 1) -> None:
        """Train from start_epoch through options.epochs, or until the early stopper or the time limit
        says so."""
        stopped = self.early_stopper.stopped or self.out_of_time()
        for epoch in range(start_epoch, self.options.epochs + 1):
            if stopped:
                break
            started = time.perf_counter()
            self.prepare_epoch(epoch)
            if isinstance(self.scheduler, ProgressSchedule):  # the rate of the epoch's first step
                self.scheduler.step(self.training_progress(epoch, 1, 0.0))
            learning_rate = self.optimizer.param_groups[0]["lr"]
            train_metrics = self.train_one_epoch(epoch)
            val_metrics = self.evaluate("val")
            if not isinstance(self.scheduler, ProgressSchedule):
                self.scheduler.step(val_metrics["loss"])
            stopped_early = decision_of_rank_zero(
                self.early_stopper.should_stop(train_metrics["loss"], val_metrics["loss"]), self.device
            )
            self.history.append(
                {
                    "epoch": epoch,
                    "train_loss": train_metrics["loss"],
                    "train_acc": train_metrics["accuracy"],
                    "val_loss": val_metrics["loss"],
                    "val_acc": val_metrics["pixel_accuracy"],
                    "val_miou": val_metrics["miou"],
                    "lr": learning_rate,
                    "seconds": time.perf_counter() - started,
                }
            )
            improved = self.best_epoch == 0 or val_metrics["miou"] > self.history[self.best_epoch - 1]["val_miou"]
            if improved:
                self.best_epoch = epoch
            if self.distributed.is_main:
                self.save_epoch(epoch, val_metrics, improved)
            # Epoch durations differ between ranks: rank 0's clock decides for all.
            out_of_time = decision_of_rank_zero(self.out_of_time(), self.device)
            stopped = stopped_early or out_of_time
            stop_reason = "early stop" if stopped_early else "time limit reached" if out_of_time else ""
            self.log(self.epoch_summary(self.history[-1], improved, stop_reason))

    def out_of_time(self) -> bool:
        """Whether one more epoch, as long as the mean one so far, would end past the time limit."""
        if not self.history:
            return False
        elapsed = sum(row["seconds"] for row in self.history)
        return elapsed + elapsed / len(self.history) > 60 * self.options.time_limit_minutes

    def epoch_summary(self, row: dict, improved: bool, stop_reason: str) -> str:
        return (
            f"{self.model_name} epoch {row['epoch']}/{self.options.epochs}: "
            f"train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} | "
            f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f} mIoU {row['val_miou']:.4f} | "
            f"lr {row['lr']:.1e} | {row['seconds']:.1f} s"
            + (" | best so far" if improved else "")
            + (f" | {stop_reason}" if stop_reason else "")
        )
