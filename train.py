"""Train segmentation models on the preprocessed CCP cache: checkpoints, history, curves, test metrics.

    python train.py --model unet                      # one model
    python train.py --model all --epochs 32           # every model on the same split, then a comparison
    torchrun --standalone --nproc_per_node=4 train.py --model resnet50   # four GPUs of one machine

For each model, --out receives <model>.pt (best epoch by val mIoU), <model>_last.pt (latest epoch, for
--resume), <model>.csv (history), <model>.png (curves) and <model>_test.json (best checkpoint on the test
split); with several models also comparison.png and summary.md. Adam; the learning rate drops tenfold after
3 epochs without val-loss improvement; early stopping after --patience such epochs.
"""

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist

from checkpoint import build_model_from_checkpoint, load_checkpoint
from dataset import AUGMENT_CHOICES, Cache, load_cache
from devices import DEVICE_CHOICES, PRECISION_CHOICES, resolve_device, resolve_precision
from errors import ClothVisionError, error_reason, run_cli
from figures import display_available
from models import (
    FINE_TUNING_RATES,
    FROM_SCRATCH_RATES,
    MODEL_NAMES,
    MODEL_REGISTRY,
    PRETRAINED_CHOICES,
    count_parameters,
    default_learning_rates,
    get_model,
)
from trainers import TrainingOptions, trainer_class_for
from trainers.distributed import (
    DistributedContext,
    detect_distributed,
    device_for_process,
    process_group,
    wait_for_all_processes,
)
from trainers.model_trainer import CLASS_WEIGHT_CHOICES
from trainers.plots import plot_comparison, plot_training_curves
from trainers.summary import ModelSummary, write_summary

DEFAULT_UNET_BASE_WIDTH = 70
# The one place the training defaults are written: train()'s signature and the command line read them here.
DEFAULTS = TrainingOptions()


def parse_model_names(text: str | Sequence[str]) -> list[str]:
    """'all', one name or a comma-separated list (or a list of names) -> registry names, in order."""
    names = text.split(",") if isinstance(text, str) else list(text)
    names = [name.strip() for name in names if name.strip()]
    if names == ["all"]:
        return list(MODEL_NAMES)
    unknown = [name for name in names if name not in MODEL_REGISTRY]
    if unknown or not names:
        raise ClothVisionError(
            f"unknown model '{','.join(unknown)}': choose one of {', '.join(MODEL_NAMES)}, "
            "a comma-separated list of them, or all"
        )
    return list(dict.fromkeys(names))


def check_options(
    names: list[str],
    options: TrainingOptions,
    lr: float | None,
    backbone_lr_factor: float | None,
    weights: str | None,
    dist_timeout: float,
) -> None:
    checks = [
        (options.epochs >= 1, f"--epochs {options.epochs}: train at least 1 epoch"),
        (options.batch_size >= 1, f"--batch-size {options.batch_size}: use at least 1 image per batch"),
        (lr is None or lr > 0, f"--lr {lr}: the learning rate must be positive"),
        (
            options.time_limit_minutes > 0,
            f"--time-limit-minutes {options.time_limit_minutes:g}: use a positive number of minutes",
        ),
        (
            options.class_weights in CLASS_WEIGHT_CHOICES,
            f"--class-weights {options.class_weights}: use one of {', '.join(CLASS_WEIGHT_CHOICES)}",
        ),
        (
            options.freeze_backbone_epochs >= 0,
            f"--freeze-backbone-epochs {options.freeze_backbone_epochs}: use 0 (never frozen) or more",
        ),
        (
            backbone_lr_factor is None or backbone_lr_factor > 0,
            f"--backbone-lr-factor {backbone_lr_factor}: use a positive factor "
            "(freeze the backbone with --freeze-backbone-epochs instead)",
        ),
        (options.augment in AUGMENT_CHOICES, f"--augment {options.augment}: use one of {', '.join(AUGMENT_CHOICES)}"),
        (
            options.precision in PRECISION_CHOICES,
            f"--precision {options.precision}: use one of {', '.join(PRECISION_CHOICES)}",
        ),
        (dist_timeout > 0, f"--dist-timeout {dist_timeout}: use a positive number of seconds"),
        (
            weights is None or len(names) == 1,
            "--weights loads one model's state dict: train that single model with --model NAME",
        ),
        # DeepLabV3's image-pooling branch normalises 1×1 features: BatchNorm needs two images to do that.
        (
            options.batch_size >= 2 or not any(MODEL_REGISTRY[name].transfer_learning for name in names),
            "--batch-size 1 cannot train the DeepLabV3 models: the BatchNorm after their image pooling needs "
            "at least 2 images per batch",
        ),
    ]
    for passed, message in checks:
        if not passed:
            raise ClothVisionError(message)


def check_cache_fits(cache: Cache, batch_size: int, context: DistributedContext) -> None:
    """Every split must hold images, and the train split a full batch for every process."""
    for split in ("train", "val", "test"):
        if len(cache.split_indices(split)) == 0:
            raise ClothVisionError(
                f"cache {cache.cache_dir} has no {split} images: preprocess more images "
                "(drop --limit) with `python preprocess.py`"
            )
    train_images = len(cache.split_indices("train"))
    if train_images // context.world_size < batch_size:
        raise ClothVisionError(
            f"cache {cache.cache_dir} has {train_images} train images for {context.world_size} "
            f"process(es), fewer than one batch of {batch_size} each: lower --batch-size"
        )


def check_resumable_outputs(names: list[str], out: Path) -> None:
    """--resume continues every model that has a last checkpoint; at least one must have it."""
    if not any((out / f"{name}_last.pt").is_file() for name in names):
        expected = ", ".join(str(out / f"{name}_last.pt") for name in names)
        raise ClothVisionError(
            f"--resume found no last checkpoint ({expected}): pass the --out folder of the "
            "interrupted run, or train without --resume"
        )


def build_model(
    name: str,
    num_classes: int,
    pretrained: str,
    weights: str | None,
    model_kwargs: dict,
    context: DistributedContext,
) -> torch.nn.Module:
    """Rank 0 builds (and downloads pretrained weights) first; the others then read torch's weight cache."""
    if not context.is_main:
        wait_for_all_processes()
    model = get_model(
        name,
        num_classes,
        pretrained=pretrained if MODEL_REGISTRY[name].transfer_learning else "none",
        weights_file=weights,
        **model_kwargs,
    )
    if context.is_main:
        wait_for_all_processes()
    return model


def train_model(
    name: str,
    cache: Cache,
    device: torch.device,
    context: DistributedContext,
    options: TrainingOptions,
    run_arguments: dict,
    show_plots: bool,
) -> dict:
    """Train one model end to end as train() was asked to (run_arguments); returns its history, test report
    and summary row."""
    # Seeded per model, so a model trained within --model all matches the same model trained alone.
    torch.manual_seed(options.seed)
    out = Path(run_arguments["out"])
    model_kwargs = {"base_width": run_arguments["unet_base_width"]} if name == "unet" else {}
    pretrained, weights = run_arguments["pretrained"], run_arguments["weights"]
    model = build_model(name, len(cache.class_names), pretrained, weights, model_kwargs, context)
    trainer = trainer_class_for(name)(
        model,
        name,
        model_kwargs,
        cache,
        device,
        out,
        options,
        context,
        {
            **run_arguments,
            "model": name,
            "lr": options.learning_rate,
            "backbone_lr_factor": options.backbone_lr_factor,
            "precision_used": resolve_precision(options.precision, device).name,
        },
    )
    parameters = count_parameters(model)
    if context.is_main:
        height, width = cache.meta["image_size"]
        split_sizes = "/".join(str(len(cache.split_indices(split))) for split in ("train", "val", "test"))
        print(
            f"{name}: {MODEL_REGISTRY[name].description}; {parameters / 1e6:.2f} M parameters, "
            f"{height}x{width} images, train/val/test {split_sizes}, device {device}, "
            f"{trainer.precision.describe()}, augment {options.augment}"
            + (f", {context.world_size} processes" if context.enabled else "")
            + f"\n{name}: Adam learning rates: {trainer.starting_learning_rates}",
            flush=True,
        )
    resuming = run_arguments["resume"] and trainer.last_checkpoint_path.is_file()
    start_epoch = trainer.resume() if resuming else 1
    trainer.fit(start_epoch)
    report = trainer.test()
    history = trainer.history
    if context.is_main:
        plot_training_curves(history, name, out / f"{name}.png", show=show_plots)
    best = history[trainer.best_epoch - 1]
    summary = ModelSummary(
        name,
        parameters,
        len(history),
        trainer.best_epoch,
        best["val_miou"],
        report["pixel_accuracy"],
        report["miou"],
        report["fw_iou"],
        sum(row["seconds"] for row in history) / len(history),
        trainer.starting_learning_rates,
    )
    return {"history": history, "test": report, "summary": summary}


def train(
    model: str | Sequence[str] = "unet",
    data: str | Path = "data/processed",
    out: str | Path = "results",
    epochs: int = DEFAULTS.epochs,
    batch_size: int = DEFAULTS.batch_size,
    lr: float | None = None,
    device: str = "auto",
    seed: int = DEFAULTS.seed,
    resume: bool = False,
    pretrained: str = "imagenet",
    weights: str | None = None,
    class_weights: str = DEFAULTS.class_weights,
    unet_base_width: int = DEFAULT_UNET_BASE_WIDTH,
    backbone_lr_factor: float | None = None,
    freeze_backbone_epochs: int = DEFAULTS.freeze_backbone_epochs,
    precision: str = DEFAULTS.precision,
    augment: str = DEFAULTS.augment,
    time_limit_minutes: float = DEFAULTS.time_limit_minutes,
    compile_model: bool = DEFAULTS.compile_model,
    sync_batchnorm: bool = DEFAULTS.sync_batchnorm,
    patience: int = DEFAULTS.patience,
    min_delta: float = DEFAULTS.min_delta,
    max_loss_diff: float = DEFAULTS.max_loss_diff,
    dist_timeout: float = 600.0,
    show_plots: bool = True,
    show_progress: bool = True,
) -> dict[str, dict]:
    """Train each named model on the cache in `data`, writing its files into `out`.

    Returns {model name: {"history": [...], "test": test report, "summary": ModelSummary}}. lr=None and
    backbone_lr_factor=None take the rates that fit where each model's weights come from
    (models.default_learning_rates). Under torchrun every process calls this; only rank 0 writes and prints.
    """
    # The call as plain values, recorded in every checkpoint as "args".
    run_arguments = {key: str(value) if isinstance(value, Path) else value for key, value in locals().items()}
    names = parse_model_names(model)
    out = Path(out)
    options = TrainingOptions(
        epochs=epochs,
        batch_size=batch_size,
        class_weights=class_weights,
        seed=seed,
        patience=patience,
        min_delta=min_delta,
        max_loss_diff=max_loss_diff,
        compile_model=compile_model,
        sync_batchnorm=sync_batchnorm,
        freeze_backbone_epochs=freeze_backbone_epochs,
        precision=precision,
        augment=augment,
        time_limit_minutes=time_limit_minutes,
        show_progress=show_progress,
    )
    check_options(names, options, lr, backbone_lr_factor, weights, dist_timeout)
    if pretrained not in PRETRAINED_CHOICES:
        raise ClothVisionError(f"--pretrained {pretrained}: use one of {', '.join(PRETRAINED_CHOICES)}")
    if resume:
        check_resumable_outputs(names, out)
    cache = load_cache(data)
    context = detect_distributed()
    device = device_for_process(resolve_device(device), context)
    check_cache_fits(cache, batch_size, context)
    if sync_batchnorm and context.enabled and device.type != "cuda":
        raise ClothVisionError(
            "--sync-batchnorm needs CUDA devices (SyncBatchNorm has no CPU kernel): drop it or run on GPUs"
        )
    if device.type == "cuda":
        # Fixed input sizes: let cuDNN pick its fastest convolution algorithms once.
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
    run_arguments.update(device=str(device), world_size=context.world_size)
    show_plots = show_plots and context.is_main and display_available()
    results = {}
    try:
        with process_group(context, device, dist_timeout):
            for name in names:
                rates = default_learning_rates(name, pretrained, weights)
                model_options = replace(
                    options,
                    learning_rate=rates.learning_rate if lr is None else lr,
                    backbone_lr_factor=rates.backbone_lr_factor if backbone_lr_factor is None else backbone_lr_factor,
                )
                results[name] = train_model(name, cache, device, context, model_options, run_arguments, show_plots)
    except dist.DistError as error:
        raise ClothVisionError(
            f"process {context.rank} of {context.world_size}: {error_reason(error)}; another process of the "
            f"job failed or did not answer within --dist-timeout {dist_timeout:g} s: its log says why; rerun "
            "with --resume to continue from the last finished epoch"
        ) from None
    if context.is_main and len(names) > 1:
        plot_comparison(
            {name: result["history"] for name, result in results.items()},
            out / "comparison.png",
            show=show_plots,
        )
        write_summary([result["summary"] for result in results.values()], out / "summary.md")
        print(f"wrote {out / 'comparison.png'} and {out / 'summary.md'}")
    if show_plots:
        import matplotlib.pyplot as plt

        plt.show()
    return results


def checkpoint_split_cache(checkpoint: dict, checkpoint_path: str | Path, cache: Cache, split: str) -> Cache:
    """The cache with `split` made of the images the checkpoint's own split put there, found by id.

    A cache rebuilt with another --seed or --limit splits the images differently: scoring a checkpoint on
    that cache's own test split would partly score it on its training images, without a word.
    """
    if list(checkpoint["image_size"]) != list(cache.meta["image_size"]):
        height, width = checkpoint["image_size"]
        raise ClothVisionError(
            f"checkpoint {checkpoint_path} was trained on {height}x{width} images, cache {cache.cache_dir} "
            f"holds {cache.meta['image_size'][0]}x{cache.meta['image_size'][1]}: evaluate it on a cache made "
            f"with `python preprocess.py --size {height} {width}`"
        )
    cache.split_indices(split)  # an unknown split name is refused here, naming the valid ones
    wanted = checkpoint["split_ids"][split]
    row_of_id = {image_id: row for row, image_id in enumerate(cache.meta["ids"])}
    missing = [image_id for image_id in wanted if image_id not in row_of_id]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ClothVisionError(
            f"cache {cache.cache_dir} lacks {len(missing)} of the {len(wanted)} {split} images of checkpoint "
            f"{checkpoint_path} ({shown}): evaluate it on a cache that holds them (preprocess without --limit)"
        )
    rows = sorted(row_of_id[image_id] for image_id in wanted)
    return replace(cache, meta={**cache.meta, "split": {**cache.meta["split"], split: rows}})


def evaluate_checkpoint(
    checkpoint_path: str | Path,
    data: str | Path = "data/processed",
    split: str = "val",
    device: str = "auto",
    batch_size: int = DEFAULTS.batch_size,
    precision: str = DEFAULTS.precision,
) -> dict:
    """Loss, confusion matrix and metrics of a saved checkpoint on one split, in one process.

    The split is the checkpoint's own (its recorded image ids), taken from the cache in `data` whatever
    that cache's split; a cache at another image size or without those images is refused.
    """
    checkpoint = load_checkpoint(checkpoint_path)
    cache = load_cache(data)
    if checkpoint["class_names"] != cache.class_names:
        raise ClothVisionError(
            f"checkpoint {checkpoint_path} was trained on other classes than cache {data}: "
            "evaluate it on the cache it was trained on"
        )
    cache = checkpoint_split_cache(checkpoint, checkpoint_path, cache, split)
    name = checkpoint["model_name"]
    options = TrainingOptions(
        batch_size=batch_size,
        class_weights=checkpoint["args"]["class_weights"],
        precision=precision,
        show_progress=False,
    )
    trainer = trainer_class_for(name)(
        build_model_from_checkpoint(checkpoint),
        name,
        checkpoint["model_kwargs"],
        cache,
        resolve_device(device),
        Path(checkpoint_path).parent,
        options,
    )
    return trainer.evaluate(split)


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, add_help=add_help, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        default="unet",
        help=f"model(s) to train: one of {', '.join(MODEL_NAMES)}, a comma-separated list, or all "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--data", default="data/processed", help="cache written by preprocess.py (default: %(default)s)"
    )
    parser.add_argument(
        "--out",
        default="results",
        help="folder for checkpoints, history, curves and test metrics (default: %(default)s)",
    )
    parser.add_argument(
        "--epochs", type=int, default=DEFAULTS.epochs, help="maximum number of epochs (default: %(default)s)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULTS.batch_size,
        help="images per batch and per process (default: %(default)s)",
    )
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"Adam learning rate (default: by where the weights come from: {FROM_SCRATCH_RATES.learning_rate:g} "
        f"from scratch, i.e. the U-net and --no-pretrained; {FINE_TUNING_RATES.learning_rate:g} for a "
        "pretrained or --weights backbone)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default=DEFAULTS.precision,
        help="auto: bf16 autocast + channels_last on CUDA and on CPUs with native bf16 (AVX512-BF16, AMX), "
        "float32 elsewhere (default: %(default)s)",
    )
    parser.add_argument(
        "--augment",
        choices=AUGMENT_CHOICES,
        default=DEFAULTS.augment,
        help="training batches on the device: none; flip (horizontal flips); full (random zoom 0.5-2x, crop "
        "or pad back to size, flip, brightness/contrast/saturation jitter) (default: %(default)s)",
    )
    parser.add_argument(
        "--time-limit-minutes",
        type=float,
        default=DEFAULTS.time_limit_minutes,
        help="stop a model's training once another epoch would end past this many minutes of it "
        "(default: %(default)s, i.e. no limit)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        choices=DEVICE_CHOICES,
        help="auto picks CUDA, then MPS, then CPU (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULTS.seed,
        help="seed of the initial weights, batch order and augmentation (default: %(default)s)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue each model from <out>/<model>_last.pt where it exists (default: off)",
    )
    parser.add_argument(
        "--pretrained",
        choices=PRETRAINED_CHOICES,
        default="imagenet",
        help="starting weights of the DeepLabV3 models, downloaded by torchvision; the U-net always "
        "starts from scratch (default: %(default)s)",
    )
    parser.add_argument(
        "--no-pretrained",
        dest="pretrained",
        action="store_const",
        const="none",
        help="same as --pretrained none: train from scratch, no download (default: off)",
    )
    parser.add_argument(
        "--weights",
        default=None,
        metavar="FILE",
        help="start from a local state dict (whole model or backbone) instead of a download (default: none)",
    )
    parser.add_argument(
        "--class-weights",
        choices=CLASS_WEIGHT_CHOICES,
        default=DEFAULTS.class_weights,
        help="loss weight per class: inverse-log-freq gives 1/ln(1.02 + train pixel share), so rare "
        "garments count more (default: %(default)s)",
    )
    parser.add_argument(
        "--unet-base-width",
        type=int,
        default=DEFAULT_UNET_BASE_WIDTH,
        help="channels of the U-net's first block; later blocks double it (default: %(default)s)",
    )
    parser.add_argument(
        "--backbone-lr-factor",
        type=float,
        default=None,
        help="DeepLabV3 backbone learning rate = --lr × this factor (default: by where the weights come from: "
        f"{FROM_SCRATCH_RATES.backbone_lr_factor:g} from scratch, {FINE_TUNING_RATES.backbone_lr_factor:g} "
        "for a pretrained or --weights backbone)",
    )
    parser.add_argument(
        "--freeze-backbone-epochs",
        type=int,
        default=DEFAULTS.freeze_backbone_epochs,
        help="keep the DeepLabV3 backbone frozen for this many first epochs (default: %(default)s)",
    )
    parser.add_argument(
        "--compile",
        dest="compile_model",
        action="store_true",
        help="compile the model with torch.compile (default: off)",
    )
    parser.add_argument(
        "--sync-batchnorm",
        action="store_true",
        help="under torchrun on GPUs, compute BatchNorm statistics over all processes' batches (default: off)",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=DEFAULTS.patience,
        help="early stopping: stop after this many epochs without val loss improvement (default: %(default)s)",
    )
    parser.add_argument(
        "--min-delta",
        type=float,
        default=DEFAULTS.min_delta,
        help="early stopping: the val loss must improve by more than this (default: %(default)s)",
    )
    parser.add_argument(
        "--max-loss-diff",
        type=float,
        default=DEFAULTS.max_loss_diff,
        help="early stopping: an epoch whose val loss exceeds its train loss by more than this "
        "counts as bad (default: %(default)s, i.e. off)",
    )
    parser.add_argument(
        "--dist-timeout",
        type=float,
        default=600.0,
        help="under torchrun, seconds a process waits for the others in a collective before failing "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--no-show",
        dest="show_plots",
        action="store_false",
        help="never open figure windows; by default they open at the end when a display exists",
    )
    return parser


def main(argv: list[str] | None = None) -> dict[str, dict]:
    args = get_args_parser().parse_args(argv)
    return train(**vars(args))


if __name__ == "__main__":
    sys.exit(run_cli(main))
