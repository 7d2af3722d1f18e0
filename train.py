"""Train segmentation models on the preprocessed CCP cache: checkpoints, history, curves, test metrics.

    python train.py --model unet                      # one model
    python train.py --model all --epochs 32           # every model on the same split, then a comparison
    python train.py --evaluate results/unet.pt --tta flip   # score a checkpoint on its test split
    torchrun --standalone --nproc_per_node=4 train.py --model resnet50   # four GPUs of one machine

For each model, --out receives <model>.pt (best epoch by val mIoU), <model>_last.pt (latest epoch, for
--resume), <model>.csv (history), <model>.png (curves), <model>_test.json (best checkpoint on the test split,
at the annotations' own size with 95 % intervals) with <model>_test_images.npz (its per-image confusion
matrices, for paired comparisons), <model>_config.json (every option, to repeat the run with --config); with
several models also comparison.png and summary.md. Adam; the learning rate is divided by 10 after 3 epochs
without val-loss improvement (--lr-schedule plateau, the default), or decays every batch to zero at the run's
end (--lr-schedule poly, cosine or linear); early stopping after --patience epochs without val-loss improvement.
"""

import sys
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from dataset import Cache, load_cache
from helpers.devices import resolve_device
from helpers.errors import ClothVisionError, error_reason, run_cli
from helpers.figures import display_available
from helpers.interrupts import announced_interrupts
from helpers.output_paths import check_output_folder
from models import MODEL_REGISTRY, count_parameters, get_model, model_kwargs_for, starts_from_scratch
from models.deeplabv3 import fetch_pretrained_weights
from trainers import ModelTrainer, TrainingOptions, trainer_class_for
from trainers.command_line import parse_given_options
from trainers.distributed import (
    DistributedContext,
    detect_distributed,
    device_for_process,
    process_group,
    wait_for_all_processes,
)
from trainers.evaluate_command import run_evaluate_command
from trainers.option_lookup import make_options, option_keywords
from trainers.options import with_learning_rates
from trainers.plots import plot_comparison, plot_training_curves
from trainers.report import read_image_confusion
from trainers.run_checks import (
    NEVER_RESUMED,
    check_cache_fits,
    check_options,
    check_resumable_outputs,
    parse_model_names,
    recorded_options,
)
from trainers.run_config import run_config, write_run_config
from trainers.run_estimate import WholeRunEstimate
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
    cache: Cache,
    device: torch.device,
    context: DistributedContext,
    options: TrainingOptions,
    show_plots: bool,
    whole_run: WholeRunEstimate | None = None,
) -> dict:
    """Train the model options.model names end to end; returns its history, test report and summary row.
    whole_run (rank 0's) prints the whole invocation's estimated time after the model's first steps."""
    # Seeded per model, so a model trained within --model all matches the same model trained alone.
    torch.manual_seed(options.seed)
    name, out = options.model, Path(options.out)
    model_kwargs = model_kwargs_for(name, options.unet_base_width, options.unet_stem)
    model = build_model(name, len(cache.class_names), options.pretrained, options.weights, model_kwargs, context)
    config = run_config(options, model_kwargs, cache.meta)
    trainer = trainer_class_for(name)(model, name, model_kwargs, cache, device, out, options, context, config,
                                      whole_run)
    parameters = count_parameters(model)
    if context.is_main:
        write_run_config(config)
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
    resuming = options.resume and trainer.last_checkpoint_path.is_file()
    start_epoch = trainer.resume() if resuming else 1
    if whole_run is not None:
        whole_run.start_model()

    def announce_stopping() -> None:
        if context.is_main:
            tqdm.write(stopping_message(name), file=sys.stderr)

    with announced_interrupts(announce_stopping):
        try:
            trainer.fit(start_epoch)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(interrupted_message(trainer, options)) from None
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
        f"{trainer.starting_learning_rates}, {options.lr_schedule} schedule",
        report["intervals"],
    )
    return {"history": history, "test": report, "summary": summary}


def stopping_message(name: str) -> str:
    """Said the moment Ctrl-C arrives: the run stops only when the native call running now returns."""
    return (f"stopping: waiting for {name}'s running computation to return (one training step can take minutes "
            "on a CPU); the epoch in progress is dropped")


def interrupted_message(trainer: ModelTrainer, options: TrainingOptions) -> str:
    """What an interrupted model has saved and the command that continues it."""
    if not trainer.history:
        return f"{options.model} finished no epoch, nothing was saved for it"
    return (
        f"{options.model} epoch {trainer.history[-1]['epoch']} is saved in {trainer.last_checkpoint_path}; "
        f"continue with `python train.py --model {options.model} --data {options.data} --out {options.out} --resume`"
    )


def options_for_model(name: str, options: TrainingOptions, given: dict) -> TrainingOptions:
    """This model's options: a resumed model's recorded ones under those given explicitly, and the learning
    rates that fit where its weights come from when none were given."""
    model_options = replace(options, model=name)
    if options.resume:
        recorded = recorded_options(Path(options.out) / f"{name}_last.pt")
        kept = {keyword: value for keyword, value in recorded.items()
                if keyword not in given and keyword not in NEVER_RESUMED}
        model_options = make_options(**{**option_keywords(model_options), **kept})
    return with_learning_rates(model_options, name)


def train(**keywords) -> dict[str, dict]:
    """Train each model named by `model` on the cache in `data`, writing its files into `out`.

    The keywords are the options of trainers.options.TrainingOptions (the flags of train.py, with
    underscores), each with the same default. Returns {model name: {"history": [...], "test": test report,
    "summary": ModelSummary}}. lr=None and backbone_lr_factor=None take the rates that fit where each
    model's weights come from (models.default_learning_rates). With resume=True a model continues from its
    last checkpoint with that run's options, except the ones given here. Under torchrun every process calls
    this; only rank 0 writes and prints.
    """
    options = make_options(**keywords)
    names = parse_model_names(options.model)
    check_options(names, options)
    out = Path(options.out)
    if options.resume:
        check_resumable_outputs(names, out)
    cache = load_cache(options.data)
    context = detect_distributed()
    device = device_for_process(resolve_device(options.device), context)
    check_cache_fits(cache, options.batch_size, context)
    # Read before anything is fetched: a resumed run's recorded --no-pretrained or --weights must not download.
    options_by_model = {name: options_for_model(name, options, keywords) for name in names}
    if context.is_main:
        check_output_folder(out, "--out")
        for name, model_options in options_by_model.items():
            if model_options.weights is None and not starts_from_scratch(name, model_options.pretrained):
                fetch_pretrained_weights(name, model_options.pretrained)
    if options.sync_batchnorm and context.enabled and device.type != "cuda":
        raise ClothVisionError(
            "--sync-batchnorm needs CUDA devices (SyncBatchNorm has no CPU kernel): drop it or run on GPUs"
        )
    if device.type == "cuda":
        # Fixed input sizes: let cuDNN pick its fastest convolution algorithms once.
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
    show_plots = options.show_plots and context.is_main and display_available()
    whole_run = WholeRunEstimate(names, device.type) if context.is_main else None
    results = {}
    try:
        with process_group(context, device, options.dist_timeout):
            for name, model_options in options_by_model.items():
                results[name] = train_model(cache, device, context, model_options, show_plots, whole_run)
    except dist.DistError as error:
        raise ClothVisionError(
            f"process {context.rank} of {context.world_size}: {error_reason(error)}; another process of the "
            f"job failed or did not answer within --dist-timeout {options.dist_timeout:g} s: its log says why; "
            "rerun with --resume to continue from the last finished epoch"
        ) from None
    if context.is_main and len(names) > 1:
        plot_comparison(
            {name: result["history"] for name, result in results.items()},
            out / "comparison.png",
            show=show_plots,
        )
        image_confusion = {name: read_image_confusion(out / f"{name}_test.json")[1] for name in names}
        write_summary([result["summary"] for result in results.values()], out / "summary.md", image_confusion)
        print(f"wrote {out / 'comparison.png'} and {out / 'summary.md'}")
    if show_plots:
        import matplotlib.pyplot as plt

        plt.show()
    return results


def main(argv: list[str] | None = None) -> dict:
    given = parse_given_options(argv, __doc__)
    checkpoint = given.pop("evaluate", None)
    if checkpoint is not None:
        return run_evaluate_command(checkpoint, given)
    if "split" in given:
        raise ClothVisionError("--split chooses the split of --evaluate CHECKPOINT: add --evaluate, or drop --split")
    return train(**given)


if __name__ == "__main__":
    sys.exit(run_cli(main))
