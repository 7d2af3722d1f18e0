"""Train segmentation models on the preprocessed CCP cache: checkpoints, history, curves, test metrics.

    python train.py --model unet                      # one model
    python train.py --model all --epochs 32           # every model on the same split, then a comparison
    torchrun --standalone --nproc_per_node=4 train.py --model resnet50   # four GPUs of one machine

For each model, --out receives <model>.pt (best epoch by val mIoU), <model>_last.pt (latest epoch, for
--resume), <model>.csv (history), <model>.png (curves) and <model>_test.json (best checkpoint on the test
split); with several models also comparison.png and summary.md. Adam; the learning rate drops tenfold after
3 epochs without val-loss improvement; early stopping after --patience such epochs.
"""

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist

from dataset import Cache, load_cache
from helpers.devices import resolve_device, resolve_precision
from helpers.errors import ClothVisionError, error_reason, run_cli
from helpers.figures import display_available
from models import MODEL_REGISTRY, PRETRAINED_CHOICES, count_parameters, default_learning_rates, get_model
from trainers import TrainingOptions, trainer_class_for
from trainers.command_line import get_args_parser
from trainers.distributed import (
    DistributedContext,
    detect_distributed,
    device_for_process,
    process_group,
    wait_for_all_processes,
)
from trainers.options import DEFAULT_OPTIONS, DEFAULT_RUN
from trainers.plots import plot_comparison, plot_training_curves
from trainers.run_checks import check_cache_fits, check_options, check_resumable_outputs, parse_model_names
from trainers.summary import ModelSummary, write_summary


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
        report["garment_groups"]["miou"],
        sum(row["seconds"] for row in history) / len(history),
        trainer.starting_learning_rates,
    )
    return {"history": history, "test": report, "summary": summary}


def train(
    model: str | Sequence[str] = DEFAULT_RUN.model,
    data: str | Path = DEFAULT_RUN.data,
    out: str | Path = DEFAULT_RUN.out,
    epochs: int = DEFAULT_OPTIONS.epochs,
    batch_size: int = DEFAULT_OPTIONS.batch_size,
    lr: float | None = None,
    device: str = DEFAULT_RUN.device,
    seed: int = DEFAULT_OPTIONS.seed,
    resume: bool = False,
    pretrained: str = DEFAULT_RUN.pretrained,
    weights: str | None = None,
    class_weights: str = DEFAULT_OPTIONS.class_weights,
    unet_base_width: int = DEFAULT_RUN.unet_base_width,
    backbone_lr_factor: float | None = None,
    freeze_backbone_epochs: int = DEFAULT_OPTIONS.freeze_backbone_epochs,
    precision: str = DEFAULT_OPTIONS.precision,
    augment: str = DEFAULT_OPTIONS.augment,
    time_limit_minutes: float = DEFAULT_OPTIONS.time_limit_minutes,
    compile_model: bool = DEFAULT_OPTIONS.compile_model,
    sync_batchnorm: bool = DEFAULT_OPTIONS.sync_batchnorm,
    patience: int = DEFAULT_OPTIONS.patience,
    min_delta: float = DEFAULT_OPTIONS.min_delta,
    max_loss_diff: float = DEFAULT_OPTIONS.max_loss_diff,
    dist_timeout: float = DEFAULT_RUN.dist_timeout,
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


def main(argv: list[str] | None = None) -> dict[str, dict]:
    args = get_args_parser(__doc__).parse_args(argv)
    return train(**vars(args))


if __name__ == "__main__":
    sys.exit(run_cli(main))
