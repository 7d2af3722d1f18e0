"""What a trainer writes: after every epoch the checkpoints and the history CSV, which --resume reads back;
at the end the test report of the best checkpoint.

Both checkpoints are self-contained: weights (in their training dtype), the model's name and constructor
arguments, what inference needs (classes, palette, image size, mean/std), metrics, history, the run's
options and split. Only <model>_last.pt adds the optimizer, scheduler, early-stopper and RNG states that make
--resume continue exactly: Adam's two moments per weight would triple the size of <model>.pt, which
inference, evaluation and export never read.
"""

import csv
import io
from pathlib import Path

import torch

from helpers.atomic_files import atomic_write_text
from helpers.checkpoint import load_checkpoint, save_checkpoint, state_dict_digest
from helpers.errors import ClothVisionError
from trainers.distributed import copy_buffers_from_rank_zero, wait_for_all_processes
from trainers.report import build_test_report, describe_report, write_test_report
from trainers.scoring import evaluate_at_native_size

HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_miou", "lr", "seconds")


def write_history_csv(history: list[dict], path: Path) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return atomic_write_text(path, buffer.getvalue())


class CheckpointingMixin:
    """ModelTrainer's saving, resuming and test report; it relies on the trainer's model, optimizer,
    scheduler, early stopper, loaders, history, paths and evaluate()."""

    def save_epoch(self, epoch: int, val_metrics: dict, improved: bool) -> None:
        """Best checkpoint first, then the last one: a crash between the two resumes from the previous
        epoch and redoes this one, instead of resuming with a best checkpoint that was never written."""
        checkpoint = self.checkpoint(epoch, val_metrics)
        if improved:
            save_checkpoint(self.best_checkpoint_path, checkpoint)
        save_checkpoint(self.last_checkpoint_path, {**checkpoint, **self.training_state()})
        write_history_csv(self.history, self.output_dir / f"{self.model_name}.csv")

    def training_state(self) -> dict:
        """What only --resume needs: optimizer, scheduler, early stopper and RNG states."""
        rng = {"torch": torch.get_rng_state(), "loader": {"seed": self.loaders["train"].seed}}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "early_stopper": self.early_stopper.state_dict(),
            "rng": rng,
        }

    def checkpoint(self, epoch: int, val_metrics: dict) -> dict:
        """The self-contained checkpoint: plain values and tensors only, loadable with weights_only=True."""
        return {
            "model_name": self.model_name,
            "model_kwargs": self.model_kwargs,
            "state_dict": self.model.state_dict(),
            "class_names": self.class_names,
            "palette": self.meta["palette"],
            "image_size": self.meta["image_size"],
            "mean": self.meta["mean"],
            "std": self.meta["std"],
            "epoch": epoch,
            "best_epoch": self.best_epoch,
            "metrics": val_metrics,
            "history": self.history,
            "args": {
                **self.config["options"],
                "device": str(self.device),
                "world_size": self.distributed.world_size,
                "precision_used": self.precision.name,
            },
            "config": self.config,
            "cache_format_version": self.meta["format_version"],
            "split_ids": {split: loader.ids for split, loader in self.loaders.items()},
        }

    def check_resumable(self, checkpoint: dict, path: Path) -> None:
        """Refuse a checkpoint of another model, class list, image size or split of the cache."""
        found_classes = checkpoint["class_names"]
        if checkpoint["model_name"] != self.model_name:
            problem = f"it is a {checkpoint['model_name']} checkpoint, not {self.model_name}"
        elif len(found_classes) != len(self.class_names):
            problem = f"it has {len(found_classes)} classes, this cache has {len(self.class_names)}"
        elif found_classes != self.class_names:
            problem = "its class names differ from this cache's"
        elif checkpoint["model_kwargs"] != self.model_kwargs:
            problem = f"its model arguments are {checkpoint['model_kwargs']}, this run's {self.model_kwargs}"
        elif list(checkpoint["image_size"]) != list(self.meta["image_size"]):
            problem = f"its image size is {checkpoint['image_size']}, this cache's is {self.meta['image_size']}"
        elif checkpoint["split_ids"] != {split: loader.ids for split, loader in self.loaders.items()}:
            problem = "it was trained on another train/val/test split than this cache's"
        elif checkpoint.get("config", {}).get("options", {}).get("lr_schedule", "plateau") != self.options.lr_schedule:
            problem = (f"it was trained with --lr-schedule {checkpoint['config']['options']['lr_schedule']}, "
                       f"this run asks for {self.options.lr_schedule}")
        else:
            return
        raise ClothVisionError(
            f"cannot resume from {path}: {problem}; train without --resume, pass the cache and "
            f"options of that run, or delete {path}"
        )

    def resume(self) -> int:
        """Restore model, optimizer, scheduler, early stopper, history and RNG from the last checkpoint;
        return the epoch to continue at."""
        path = self.last_checkpoint_path
        if not path.is_file():
            raise ClothVisionError(
                f"cannot resume {self.model_name}: {path} not found; train without --resume, "
                "or pass the --out folder of the interrupted run"
            )
        checkpoint = load_checkpoint(path)
        self.check_resumable(checkpoint, path)
        self.model.load_state_dict(checkpoint["state_dict"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.early_stopper.load_state_dict(checkpoint["early_stopper"])
        self.history = list(checkpoint["history"])
        self.best_epoch = checkpoint["best_epoch"]
        self.loaders["train"].seed = checkpoint["rng"]["loader"]["seed"]
        torch.set_rng_state(checkpoint["rng"]["torch"])
        if self.device.type == "cuda" and "cuda" in checkpoint["rng"]:
            torch.cuda.set_rng_state(checkpoint["rng"]["cuda"], self.device)
        finished = checkpoint["epoch"]
        self.log(f"{self.model_name}: resuming after epoch {finished} from {path}")
        if finished >= self.options.epochs and not (self.early_stopper.stopped or self.out_of_time()):
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
        report = build_test_report(
            {
                "model_name": self.model_name,
                "checkpoint": str(self.best_checkpoint_path),
                "state_dict_digest": state_dict_digest(state_dict),
                "best_epoch": self.best_epoch,
                "learning_rates": self.starting_learning_rates,
                "precision": self.precision.name,
                "augment": self.options.augment,
                "lr_schedule": self.options.lr_schedule,
                "loss": self.options.loss,
            },
            "test",
            loader.ids,
            metrics,
        )
        if self.distributed.is_main:
            report_path = self.output_dir / f"{self.model_name}_test.json"
            write_test_report(report, loader.ids, metrics["image_confusion"], report_path)
            self.log(f"{self.model_name} test (best epoch {self.best_epoch}): {describe_report(report)}")
        return report
