"""train.py's command line: every flag with its default (read from trainers.options) and a help text."""

import argparse

from dataset import AUGMENT_CHOICES
from helpers.devices import DEVICE_CHOICES, PRECISION_CHOICES
from models import FINE_TUNING_RATES, FROM_SCRATCH_RATES, MODEL_NAMES, PRETRAINED_CHOICES
from trainers.options import CLASS_WEIGHT_CHOICES, DEFAULT_OPTIONS, DEFAULT_RUN


def get_args_parser(description: str = "", add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=description, add_help=add_help, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        default=DEFAULT_RUN.model,
        help=f"model(s) to train: one of {', '.join(MODEL_NAMES)}, a comma-separated list, or all "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--data", default=DEFAULT_RUN.data, help="cache written by preprocess.py (default: %(default)s)"
    )
    parser.add_argument(
        "--out",
        default=DEFAULT_RUN.out,
        help="folder for checkpoints, history, curves and test metrics (default: %(default)s)",
    )
    parser.add_argument(
        "--epochs", type=int, default=DEFAULT_OPTIONS.epochs, help="maximum number of epochs (default: %(default)s)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_OPTIONS.batch_size,
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
        default=DEFAULT_OPTIONS.precision,
        help="auto: bf16 autocast + channels_last on CUDA and on CPUs with native bf16 (AVX512-BF16, AMX), "
        "float32 elsewhere (default: %(default)s)",
    )
    parser.add_argument(
        "--augment",
        choices=AUGMENT_CHOICES,
        default=DEFAULT_OPTIONS.augment,
        help="training batches on the device: none; flip (horizontal flips); full (random zoom 0.5-2x, crop "
        "or pad back to size, flip, brightness/contrast/saturation jitter) (default: %(default)s)",
    )
    parser.add_argument(
        "--time-limit-minutes",
        type=float,
        default=DEFAULT_OPTIONS.time_limit_minutes,
        help="stop a model's training once another epoch would end past this many minutes of it "
        "(default: %(default)s, i.e. no limit)",
    )
    parser.add_argument(
        "--device",
        default=DEFAULT_RUN.device,
        choices=DEVICE_CHOICES,
        help="auto picks CUDA, then MPS, then CPU (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_OPTIONS.seed,
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
        default=DEFAULT_RUN.pretrained,
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
        default=DEFAULT_OPTIONS.class_weights,
        help="loss weight per class: inverse-log-freq gives 1/ln(1.02 + train pixel share), so rare "
        "garments count more (default: %(default)s)",
    )
    parser.add_argument(
        "--unet-base-width",
        type=int,
        default=DEFAULT_RUN.unet_base_width,
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
        default=DEFAULT_OPTIONS.freeze_backbone_epochs,
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
        default=DEFAULT_OPTIONS.patience,
        help="early stopping: stop after this many epochs without val loss improvement (default: %(default)s)",
    )
    parser.add_argument(
        "--min-delta",
        type=float,
        default=DEFAULT_OPTIONS.min_delta,
        help="early stopping: the val loss must improve by more than this (default: %(default)s)",
    )
    parser.add_argument(
        "--max-loss-diff",
        type=float,
        default=DEFAULT_OPTIONS.max_loss_diff,
        help="early stopping: an epoch whose val loss exceeds its train loss by more than this "
        "counts as bad (default: %(default)s, i.e. off)",
    )
    parser.add_argument(
        "--dist-timeout",
        type=float,
        default=DEFAULT_RUN.dist_timeout,
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
