"""ModelTrainer, which runs a whole training over the one-epoch function of trainers.training_epoch.

train_one_epoch() is one pass over the train split with everything it uses passed in (as in torchvision's
references); ModelTrainer builds what it uses, and fit() runs per epoch: train_one_epoch,
evaluate() on val (trainers.scoring), the schedule's end of epoch, the EarlyStopper, a history row, the best
(highest val mIoU) and last checkpoints, both from checkpoint(); test() scores the best one on the test split
at the annotations' own size. TransferLearningTrainer overrides only parameter groups and backbone freezing.

Choices worth knowing:
- The best epoch is the one of highest val mIoU, the metric the project reports; the plateau schedule and
  the early stopper follow the val loss, as in the original project.
- A split's loss is sum(weight × pixel loss) / sum(weight) over all its pixels, the weighted mean
  CrossEntropyLoss takes over a batch, so the epoch loss does not depend on batch size.
- A time limit cuts the epoch that reaches it (trainers.schedules.RunProgress): a time-limited run uses its
  whole budget, and poly, cosine and linear end at its last step.
- Every rank seeds and draws identically, so rank 0's saved RNG state is every rank's and --resume is exact.
- The raw model is kept for state_dict(); the torch.compile and DistributedDataParallel wrappers only run
  it, so checkpoints never carry their '_orig_mod.' or 'module.' prefixes.
- With --ema-decay the weights' moving average (WeightAverage) is what validation, the test and both
  checkpoints' state_dict hold; the last checkpoint keeps the trained weights beside it for --resume.
"""

from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from dataset import Cache, DeviceBatchLoader
from early_stopper import EarlyStopper
from evaluation.garment_groups import garment_groups_for
from helpers.batch_augmentation import IGNORE_INDEX
from helpers.checkpoint import load_checkpoint, save_checkpoint, state_dict_digest
from helpers.devices import resolve_precision
from helpers.errors import ClothVisionError
from trainers.checkpointing import check_resumable, describe_epoch, restore_rng, rng_state, write_history_csv
from trainers.distributed import (
    SINGLE_PROCESS,
    DistributedContext,
    copy_buffers_from_rank_zero,
    decision_of_rank_zero,
    wait_for_all_processes,
)
from trainers.losses import class_weights_from_counts
from trainers.option_lookup import reported_options
from trainers.options import TrainingOptions, with_learning_rates
from trainers.report import build_test_report, describe_report, write_test_report
from trainers.run_config import run_config
from trainers.run_estimate import WholeRunEstimate
from trainers.schedules import RunProgress, build_schedule
from trainers.scoring import evaluate, evaluate_at_native_size
from trainers.training_epoch import WeightAverage, train_one_epoch


class ModelTrainer:
    """Trains a model whose forward pass returns logits N×C×H×W."""

    def __init__(self, model: nn.Module, model_name: str, model_kwargs: dict, cache: Cache, device: torch.device,
                 output_dir: str | Path, options: TrainingOptions, distributed: DistributedContext = SINGLE_PROCESS,
                 config: dict | None = None, whole_run: WholeRunEstimate | None = None):
        self.model_name, self.model_kwargs, self.cache = model_name, dict(model_kwargs), cache
        self.class_names = cache.class_names
        # Matched now: a class without a garment group stops the run before training, not at its test report.
        self.garment_groups = garment_groups_for(self.class_names)
        self.options = options = with_learning_rates(options, model_name)
        self.device, self.distributed, self.output_dir = device, distributed, Path(output_dir)
        self.best_checkpoint_path = self.output_dir / f"{model_name}.pt"
        self.last_checkpoint_path = self.output_dir / f"{model_name}_last.pt"
        # The run's options and provenance (trainers.run_config), kept in every checkpoint.
        self.config = run_config(options, model_kwargs, cache.meta) if config is None else config
        if distributed.enabled and options.sync_batchnorm:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.precision = resolve_precision(options.precision, device)
        self.model = self.precision.place(model, device)
        # Compiled once; the same compiled module runs training (inside DDP) and evaluation.
        self.forward_module = torch.compile(self.model) if options.compile_model else self.model
        # What validation, the test and the checkpoints' state_dict use: the trained weights or their average.
        self.weight_average = WeightAverage(self.model, options.ema_decay) if options.ema_decay > 0 else None
        self.evaluated_model = self.model if self.weight_average is None else self.weight_average.model
        self.evaluated_module = (self.forward_module if self.weight_average is None
                                 else torch.compile(self.evaluated_model) if options.compile_model
                                 else self.evaluated_model)
        self.training_network: nn.Module = self.forward_module
        self.wrapped_parameters: frozenset[str] | None = None
        self.optimizer = torch.optim.Adam(self.parameter_groups())
        self.schedule = build_schedule(self.optimizer, options.lr_schedule, options.warmup_epochs, options.epochs)
        self.early_stopper = EarlyStopper(options.patience, options.min_delta, options.max_loss_diff)
        weights = class_weights_from_counts(cache.meta["train_class_pixel_counts"], options.class_weights,
                                            options.class_weight_offset)
        self.class_weights = None if weights is None else weights.to(device)
        self.criterion = nn.CrossEntropyLoss(weight=self.class_weights, reduction="sum", ignore_index=IGNORE_INDEX)
        self.loaders = {
            split: DeviceBatchLoader(cache, split, options.batch_size, device, shuffle=split == "train",
                                     augment=options.augment if split == "train" else "none", seed=options.seed,
                                     rank=distributed.rank, world_size=distributed.world_size,
                                     drop_last=split == "train", zoom_range=options.zoom_range)
            for split in ("train", "val", "test")
        }
        self.run_progress = RunProgress(options.epochs, len(self.loaders["train"]), options.time_limit_minutes, device,
                                        len(self.loaders["val"]), options.progressive_resize)
        # The whole train.py invocation's estimate (trainers.run_estimate), told about this model's steps on rank 0.
        self.whole_run = whole_run
        self.history: list[dict] = []
        self.best_epoch = 0
        self.final_lr: float | None = None  # the rate of the run's last optimizer step, for the test report
        # What the run starts with, for the logs, the test report and summary.md.
        self.starting_learning_rates = self.describe_learning_rates()

    # What TransferLearningTrainer overrides.

    def parameter_groups(self) -> list[dict]:
        """Adam's parameter groups, each named; the history reports the first group's learning rate."""
        return [{"name": "all", "params": list(self.model.parameters()), "lr": self.options.learning_rate}]

    def prepare_epoch(self, epoch: int) -> None:
        """Called before each training epoch (1-based)."""

    def set_training_mode(self) -> None:
        self.training_network.train()

    # The epoch and the loop over epochs.

    def train_one_epoch(self, epoch: int) -> dict:
        """This trainer's network wrapped and in training mode, then the plain train_one_epoch above."""
        self.wrap_for_training()
        self.set_training_mode()
        return train_one_epoch(self.training_network, self.criterion, self.optimizer, self.loaders["train"],
                               self.schedule, self.run_progress, self.precision, epoch, self.options.loss,
                               self.model_name, self.distributed.is_main and self.options.show_progress,
                               self.weight_average, self.whole_run if self.distributed.is_main else None)

    def evaluate(self, split: str) -> dict:
        """evaluate() of the evaluated model (the trained weights or their average) over the whole split (all
        ranks' shares), with rank 0's BatchNorm statistics everywhere."""
        copy_buffers_from_rank_zero(self.evaluated_model)
        return evaluate(self.evaluated_module, self.loaders[split], self.precision, self.garment_groups,
                        self.class_weights)

    def fit(self, start_epoch: int = 1) -> None:
        """Train from start_epoch through options.epochs, or until the early stopper or the time limit says so."""
        stopped = self.early_stopper.stopped or self.run_progress.out_of_time()
        for epoch in range(start_epoch, self.options.epochs + 1):
            if stopped:
                break
            self.run_progress.start_epoch()
            self.prepare_epoch(epoch)
            train_metrics = self.train_one_epoch(epoch)
            self.run_progress.start_validation()
            val_metrics = self.evaluate("val")
            # Validation is at full size. After an epoch of half-size batches (--progressive-resize) the val loss
            # measures a scale the network has not been trained at and rises while that phase goes on (a plateau
            # cut the rate to 1e-8 before a 60-minute run's full-size half began), so the decisions on the val
            # loss wait for the epochs trained at full size. Rank 0's count: a time-limited run's ranks read their
            # own clocks, and a rate cut on some ranks only would split their weights apart.
            full_size_epoch = decision_of_rank_zero(train_metrics["half_size_steps"] == 0, self.device)
            if full_size_epoch:
                self.schedule.end_epoch(val_metrics["loss"])
            stopped_early = decision_of_rank_zero(
                full_size_epoch and self.early_stopper.should_stop(train_metrics["loss"], val_metrics["loss"]),
                self.device,
            )
            seconds = self.run_progress.end_epoch()
            self.history.append({"epoch": epoch, "train_loss": train_metrics["loss"],
                                 "train_acc": train_metrics["accuracy"], "val_loss": val_metrics["loss"],
                                 "val_acc": val_metrics["pixel_accuracy"], "val_miou": val_metrics["miou"],
                                 "lr": train_metrics["first_lr"], "seconds": seconds})
            self.final_lr = train_metrics["last_lr"]
            improved = self.best_epoch == 0 or val_metrics["miou"] > self.history[self.best_epoch - 1]["val_miou"]
            if improved:
                self.best_epoch = epoch
            if self.distributed.is_main:
                self.save_epoch(epoch, val_metrics, improved)
            cut = train_metrics["steps"] < len(self.loaders["train"])  # the same on every rank
            out_of_time = cut or decision_of_rank_zero(self.run_progress.out_of_time(), self.device)
            stopped = stopped_early or out_of_time
            stop_reason = "early stop" if stopped_early else "time limit reached" if out_of_time else ""
            self.log(describe_epoch(self.model_name, self.options.epochs, self.history[-1], improved, stop_reason))

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

    def checkpoint(self, epoch: int, val_metrics: dict) -> dict:
        """The self-contained checkpoint: plain values and tensors only, loadable with weights_only=True."""
        meta = self.cache.meta
        return {
            "model_name": self.model_name,
            "model_kwargs": self.model_kwargs,
            "state_dict": self.evaluated_model.state_dict(),
            "class_names": self.class_names,
            "palette": meta["palette"],
            "image_size": meta["image_size"],
            "mean": meta["mean"],
            "std": meta["std"],
            "epoch": epoch,
            "best_epoch": self.best_epoch,
            "metrics": val_metrics,
            "history": self.history,
            "final_lr": self.final_lr,
            "args": {**self.config["options"], "device": str(self.device), "world_size": self.distributed.world_size,
                     "precision_used": self.precision.name},
            "config": self.config,
            "cache_format_version": meta["format_version"],
            "split_ids": {split: loader.ids for split, loader in self.loaders.items()},
        }

    def save_epoch(self, epoch: int, val_metrics: dict, improved: bool) -> None:
        """The best checkpoint first, then the last one with what only --resume needs: a crash between the two
        resumes from the previous epoch and redoes this one, instead of resuming with a best checkpoint that
        was never written."""
        checkpoint = self.checkpoint(epoch, val_metrics)
        if improved:
            save_checkpoint(self.best_checkpoint_path, checkpoint)
        weight_average = {} if self.weight_average is None else {
            "training_state_dict": self.model.state_dict(), "weight_average_updates": self.weight_average.updates}
        save_checkpoint(self.last_checkpoint_path, {
            **checkpoint,
            **weight_average,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "early_stopper": self.early_stopper.state_dict(),
            "rng": rng_state(self.device, self.loaders["train"].seed),
        })
        write_history_csv(self.history, self.output_dir / f"{self.model_name}.csv")

    def resume(self) -> int:
        """Restore model, optimizer, schedule, early stopper, history and RNG from the last checkpoint;
        return the epoch to continue at."""
        path = self.last_checkpoint_path
        if not path.is_file():
            raise ClothVisionError(
                f"cannot resume {self.model_name}: {path} not found; train without --resume, "
                "or pass the --out folder of the interrupted run"
            )
        checkpoint = load_checkpoint(path)
        check_resumable(checkpoint, self.checkpoint(0, {}), path)
        # With a weight average, state_dict holds the average and training_state_dict the trained weights.
        self.model.load_state_dict(checkpoint.get("training_state_dict", checkpoint["state_dict"]))
        if self.weight_average is not None:
            self.weight_average.model.load_state_dict(checkpoint["state_dict"])
            self.weight_average.updates = checkpoint["weight_average_updates"]
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.schedule.load_state_dict(checkpoint["scheduler"])
        self.early_stopper.load_state_dict(checkpoint["early_stopper"])
        self.history = list(checkpoint["history"])
        self.best_epoch = checkpoint["best_epoch"]
        self.final_lr = checkpoint.get("final_lr")  # absent from checkpoints written before it was recorded
        self.run_progress.resume(self.history)
        self.loaders["train"].seed = restore_rng(checkpoint["rng"], self.device)
        finished = checkpoint["epoch"]
        self.log(f"{self.model_name}: resuming after epoch {finished} from {path}")
        if finished >= self.options.epochs and not (self.early_stopper.stopped or self.run_progress.out_of_time()):
            self.log(
                f"{self.model_name}: {path} has finished {finished} epochs, --epochs is {self.options.epochs}: "
                f"nothing left to train, the best checkpoint is only tested again (pass --epochs above {finished} "
                "to train on)"
            )
        return finished + 1

    def test(self) -> dict:
        """Evaluate the best checkpoint on the test split at the annotations' own size; rank 0 writes
        <model>_test.json and the per-image confusion matrices <model>_test_images.npz."""
        wait_for_all_processes()
        state_dict = load_checkpoint(self.best_checkpoint_path)["state_dict"]
        self.model.load_state_dict(state_dict)
        copy_buffers_from_rank_zero(self.model)
        loader = self.loaders["test"]
        metrics = evaluate_at_native_size(self.forward_module, loader, self.cache.native_labels("test"),
                                          self.precision, self.garment_groups, self.class_weights, self.options.tta)
        provenance = {"model_name": self.model_name, "checkpoint": str(self.best_checkpoint_path),
                      "state_dict_digest": state_dict_digest(state_dict), "best_epoch": self.best_epoch,
                      "learning_rates": self.starting_learning_rates, "final_lr": self.final_lr,
                      "precision": self.precision.name, **reported_options(self.options)}
        report = build_test_report(provenance, "test", loader.ids, metrics)
        if self.distributed.is_main:
            report_path = self.output_dir / f"{self.model_name}_test.json"
            write_test_report(report, loader.ids, metrics["image_confusion"], report_path)
            self.log(f"{self.model_name} test (best epoch {self.best_epoch}): {describe_report(report)}")
        return report

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
