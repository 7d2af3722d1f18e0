"""What ModelTrainer keeps between epochs and runs, as plain functions: the history (its CSV and the line
printed per row), the RNG state that makes --resume exact, and the checks that refuse to continue a run from
a checkpoint of another one.

Both checkpoints are self-contained (ModelTrainer.checkpoint builds them): weights (in their training dtype),
the model's name and constructor arguments, what inference needs (classes, palette, image size, mean/std),
metrics, history, the run's options and split. Only <model>_last.pt adds the optimizer, scheduler,
early-stopper and RNG states that make --resume continue exactly: Adam's two moments per weight would triple
the size of <model>.pt, which inference, evaluation and export never read.
"""

import csv
import io
from pathlib import Path

import torch

from helpers.atomic_files import atomic_write_text
from helpers.errors import ClothVisionError
from trainers.option_lookup import default_of, flag_of, keyword_of, option_fields

HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_miou", "lr", "seconds")


def write_history_csv(history: list[dict], path: Path) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return atomic_write_text(path, buffer.getvalue())


def describe_epoch(model_name: str, epochs: int, row: dict, improved: bool, stop_reason: str) -> str:
    """The line printed after an epoch, from its history row."""
    return (
        f"{model_name} epoch {row['epoch']}/{epochs}: "
        f"train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} | "
        f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f} mIoU {row['val_miou']:.4f} | "
        f"lr {row['lr']:.1e} | {row['seconds']:.1f} s"
        + (" | best so far" if improved else "")
        + (f" | {stop_reason}" if stop_reason else "")
    )


def rng_state(device: torch.device, loader_seed: int) -> dict:
    """torch's generators and the train loader's seed: what the next epoch's draws depend on."""
    state = {"torch": torch.get_rng_state(), "loader": {"seed": loader_seed}}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict, device: torch.device) -> int:
    """Set torch's generators from rng_state(); returns the train loader's seed."""
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
    return state["loader"]["seed"]


def resume_problem(found: dict, own: dict) -> str | None:
    """Why the checkpoint `found` cannot continue the run whose checkpoint would be `own` (another model, class
    list, model arguments, image size, split, or an option whose field says it must match); None if it can."""
    if found["model_name"] != own["model_name"]:
        return f"it is a {found['model_name']} checkpoint, not {own['model_name']}"
    if len(found["class_names"]) != len(own["class_names"]):
        return f"it has {len(found['class_names'])} classes, this cache has {len(own['class_names'])}"
    if found["class_names"] != own["class_names"]:
        return "its class names differ from this cache's"
    if found["model_kwargs"] != own["model_kwargs"]:
        return f"its model arguments are {found['model_kwargs']}, this run's {own['model_kwargs']}"
    if list(found["image_size"]) != list(own["image_size"]):
        return f"its image size is {found['image_size']}, this cache's is {own['image_size']}"
    if found["split_ids"] != own["split_ids"]:
        return "it was trained on another train/val/test split than this cache's"
    # Checkpoints written before the options were recorded in 'config' ran with the defaults of then.
    recorded = found.get("config", {}).get("options", {})
    for option_field in option_fields():
        keyword = keyword_of(option_field)
        if option_field.metadata["resume"] == "match":
            before, now = recorded.get(keyword, default_of(option_field)), own["config"]["options"][keyword]
            if before != now:
                return f"it was trained with {flag_of(option_field)} {before}, this run asks for {now}"
    return None


def check_resumable(found: dict, own: dict, path: Path) -> None:
    problem = resume_problem(found, own)
    if problem is not None:
        raise ClothVisionError(
            f"cannot resume from {path}: {problem}; train without --resume, pass the cache and "
            f"options of that run, or delete {path}"
        )
