"""TrainingOptions: the one place a training option is written — its field, default, help text, choices,
check, command-line group and roles. train.py's parser, train()'s keywords, the value checks, the run's
<model>_config.json, what --resume takes from the interrupted run or refuses to change, and the options the
test report records are all derived from these fields, so adding an option is adding a field here.

    options = make_options(model="unet", epochs=5)   # trainers/option_lookup.py: keywords as train() names them
"""

import math
from collections.abc import Callable
from dataclasses import Field, dataclass, field, replace

from dataset import AUGMENT_CHOICES
from evaluation.test_time_augmentation import TTA_CHOICES
from helpers.batch_augmentation import DEFAULT_ZOOM_RANGE
from helpers.devices import DEVICE_CHOICES, PRECISION_CHOICES
from models import FINE_TUNING_RATES, FROM_SCRATCH_RATES, MODEL_NAMES, PRETRAINED_CHOICES, default_learning_rates
from models.unet import DEFAULT_BASE_WIDTH, STEM_CHOICES
from trainers.losses import CLASS_WEIGHT_CHOICES, LOG_FREQUENCY_OFFSET, LOSS_CHOICES
from trainers.schedules import LR_SCHEDULE_CHOICES

# The command line's argument groups, in the order --help shows them (timm groups its flags the same way).
OPTION_GROUPS = ("data", "model", "optimisation", "augmentation", "precision", "evaluation", "distributed", "output")
# What --resume does with an option the interrupted run recorded: "keep" it unless given again; "match": refuse
# to continue with another value (a schedule cannot change mid-run); "never" take it (where and how this
# invocation runs is its own business).
RESUME_ROLES = ("keep", "match", "never")


def option(
    default,
    help: str,
    group: str,
    *,
    choices: tuple[str, ...] | None = None,
    check: Callable[[object], bool] | None = None,
    requirement: str = "",
    keyword: str | None = None,
    flag: str | None = None,
    alias: tuple[str, object, str] | None = None,
    resume: str = "keep",
    reported: bool = False,
) -> Field:
    """A TrainingOptions field with what the parser and the checks need.

    keyword: the name train() and the parser's namespace use when it differs from the field's (e.g. lr);
    flag: the command-line flag when it differs from --keyword-with-dashes; alias: (flag, value, help) of a
    second flag storing a fixed value (--no-pretrained); check/requirement: a value is refused with
    "--flag VALUE: requirement" unless check(value); resume: one of RESUME_ROLES; reported: the test report
    records the value, beside the metrics it explains.
    """
    assert group in OPTION_GROUPS and resume in RESUME_ROLES, (group, resume)
    metadata = dict(help=help, group=group, choices=choices, check=check, requirement=requirement,
                    keyword=keyword, flag=flag, alias=alias, resume=resume, reported=reported)
    return field(default=default, metadata=metadata)


def positive(value) -> bool:
    return value > 0


@dataclass
class TrainingOptions:
    """Every setting of a training run; saved in each checkpoint and in <model>_config.json."""

    # data
    data: str = option("data/processed", "cache written by preprocess.py", "data", resume="never")
    seed: int = option(0, "seed of the initial weights, batch order and augmentation", "data")
    # model
    model: str = option(
        "unet", f"model(s) to train: one of {', '.join(MODEL_NAMES)}, a comma-separated list, or all", "model",
        resume="never",
    )
    pretrained: str = option(
        "imagenet",
        "starting weights of the DeepLabV3 models, downloaded by torchvision; the U-net always starts from scratch",
        "model",
        choices=PRETRAINED_CHOICES,
        alias=("--no-pretrained", "none", "same as --pretrained none: train from scratch, no download"),
    )
    weights: str | None = option(
        None, "start from a local state dict (whole model or backbone) instead of a download", "model"
    )
    unet_base_width: int = option(
        DEFAULT_BASE_WIDTH, "channels of the U-net's first block; later blocks double it", "model",
        check=positive, requirement="use a positive number of channels",
    )
    unet_stem: str = option(
        "full",
        "the U-net's first stage: full (the original's, at the input's size) or stride2 (a strided convolution "
        "halves the input, every level runs at half size and the logits are upsampled: about a quarter of the FLOPs)",
        "model",
        choices=STEM_CHOICES,
    )
    # optimisation
    epochs: int = option(32, "maximum number of epochs", "optimisation",
                         check=lambda value: value >= 1, requirement="train at least 1 epoch")
    batch_size: int = option(8, "images per batch and per process", "optimisation",
                             check=lambda value: value >= 1, requirement="use at least 1 image per batch")
    learning_rate: float | None = option(
        None,
        f"Adam learning rate (default by where the weights come from: {FROM_SCRATCH_RATES.learning_rate:g} from "
        f"scratch, i.e. the U-net and --no-pretrained; {FINE_TUNING_RATES.learning_rate:g} for a pretrained or "
        "--weights backbone)",
        "optimisation",
        keyword="lr",
        check=positive,
        requirement="the learning rate must be positive",
    )
    backbone_lr_factor: float | None = option(
        None,
        "DeepLabV3 backbone learning rate = --lr × this factor (default by where the weights come from: "
        f"{FROM_SCRATCH_RATES.backbone_lr_factor:g} from scratch, {FINE_TUNING_RATES.backbone_lr_factor:g} for a "
        "pretrained or --weights backbone)",
        "optimisation",
        check=positive,
        requirement="use a positive factor (freeze the backbone with --freeze-backbone-epochs instead)",
    )
    freeze_backbone_epochs: int = option(
        0, "keep the DeepLabV3 backbone frozen for this many first epochs", "optimisation",
        check=lambda value: value >= 0, requirement="use 0 (never frozen) or more",
    )
    class_weights: str = option(
        "none",
        "loss weight per class: inverse-log-freq gives 1/ln(C + train pixel share), C the --class-weight-offset, so "
        "rare garments count more",
        "optimisation",
        choices=CLASS_WEIGHT_CHOICES,
    )
    class_weight_offset: float = option(
        LOG_FREQUENCY_OFFSET,
        f"C of inverse-log-freq's 1/ln(C + p) (ENet's {LOG_FREQUENCY_OFFSET:g}: weights up to 50; a larger C "
        "gives smaller weights to rare classes, e.g. 1.2: up to 5.5)",
        "optimisation",
        check=lambda value: value > 1, requirement="use an offset above 1 (at 1 or below a weight is infinite or "
        "negative)",
    )
    patience: int = option(7, "early stopping: stop after this many epochs without val loss improvement",
                           "optimisation")
    min_delta: float = option(0.0, "early stopping: the val loss must improve by more than this", "optimisation")
    max_loss_diff: float = option(
        math.inf, "early stopping: an epoch whose val loss exceeds its train loss by more than this counts as bad "
        "(inf: off)", "optimisation",
    )
    # Plateau: in the CPU study (U-net, 18 min each at equal compute) poly reached test mIoU 4.6 % (4.4–4.8)
    # against 5.3 % (5.1–5.6) for plateau: a rate decayed to zero costs a run that still underfits.
    lr_schedule: str = option(
        "plateau",
        "learning rate over the run: plateau (divide by 10 after 3 epochs without val-loss improvement, the "
        "original's); poly (× (1 − t)^0.9), cosine (× ½(1 + cos πt)) or linear (× (1 − t)), stepped every batch, t "
        "the fraction of training done (of the steps, or of --time-limit-minutes when that ends first)",
        "optimisation",
        choices=LR_SCHEDULE_CHOICES,
        resume="match",
        reported=True,
    )
    warmup_epochs: float = option(
        0.0, "poly, cosine and linear: grow the rate linearly from 0 over this many first epochs", "optimisation",
        check=lambda value: value >= 0, requirement="use 0 (no warm-up) or more epochs",
    )
    loss: str = option(
        "ce",
        "training loss: ce (cross-entropy) or ce+jaccard (plus a soft-Jaccard term over the classes present in "
        "the batch, which rewards rare classes)",
        "optimisation",
        choices=LOSS_CHOICES,
        reported=True,
    )
    # The average's state is part of the run: a resumed run cannot start or stop averaging, or change its decay.
    ema_decay: float = option(
        0.0,
        "validate, test and save an exponential moving average of the weights with this decay, updated after every "
        "optimizer step (its decay warmed up as min(D, (1 + n) / (10 + n)) after n steps; BatchNorm statistics "
        "averaged too); 0: off",
        "optimisation",
        check=lambda value: 0 <= value < 1, requirement="use 0 (off) or a decay below 1, e.g. 0.999",
        resume="match",
        reported=True,
    )
    # Equal compute: the last epoch is cut so that its validation ends at the limit (trainers.schedules).
    time_limit_minutes: float = option(
        math.inf, "stop a model's training after this many minutes of it, counting each epoch's training and "
        "validation (not start-up, checkpoint writing or the test); the last epoch is cut short so that its "
        "validation ends at the limit (inf: no limit)", "optimisation", check=positive,
        requirement="use a positive number of minutes",
    )
    # augmentation
    # Flips only: in the CPU study's ablation (U-net, 25 epochs at 240×144) full augmentation reached test
    # 83.1 % / mIoU 0.065 against 85.9 % / 0.093 with flips; these short runs underfit, and zooming and
    # colour jitter make the task harder still. --augment full is there for longer schedules.
    augment: str = option(
        "flip",
        "training batches on the device: none; flip (horizontal flips); full (random zoom by --zoom-range, crop or "
        "pad back to size, flip, brightness/contrast/saturation jitter)",
        "augmentation",
        choices=AUGMENT_CHOICES,
        reported=True,
    )
    # A milder zoom than 0.5-2x for a small network that full augmentation turns from overfitting to underfitting.
    zoom_range: float = option(
        DEFAULT_ZOOM_RANGE,
        "with --augment full, each image is zoomed by a factor drawn uniformly from 1/Z to Z (2: 0.5-2x; 1: no "
        "zoom)",
        "augmentation",
        check=lambda value: value >= 1, requirement="use a factor of at least 1, e.g. 1.25 for 0.8-1.25x",
        reported=True,
    )
    # The share follows the schedules' t, so it ends at the same point of a step-counted or a time-limited run.
    progressive_resize: float = option(
        0.0,
        "train the first F share of the run (of the steps, or of --time-limit-minutes: the t of the schedules) on "
        "batches halved on the device (images bilinear with antialiasing, labels nearest), the rest at full size; "
        "validation and test always at full size, the plateau schedule and early stopping heed only the full-size "
        "epochs' val loss; 0: off",
        "augmentation",
        check=lambda value: 0 <= value <= 1, requirement="use a share from 0 (off) to 1 (the whole run at half size)",
        resume="match",
        reported=True,
    )
    # precision
    device: str = option("auto", "auto picks CUDA, then MPS, then CPU", "precision", choices=DEVICE_CHOICES,
                         resume="never")
    precision: str = option(
        "auto",
        "auto: bf16 autocast + channels_last on CUDA and on CPUs with native bf16 (AVX512-BF16, AMX), float32 "
        "elsewhere",
        "precision",
        choices=PRECISION_CHOICES,
    )
    compile_model: bool = option(False, "compile the model with torch.compile", "precision", flag="--compile")
    # evaluation
    tta: str = option(
        "none",
        "test-time augmentation of the final test evaluation: none, or flip (the mean of the logits of each image "
        "and of its mirror image)",
        "evaluation",
        choices=TTA_CHOICES,
    )
    # distributed
    sync_batchnorm: bool = option(
        False, "under torchrun on GPUs, compute BatchNorm statistics over all processes' batches", "distributed"
    )
    dist_timeout: float = option(
        600.0, "under torchrun, seconds a process waits for the others in a collective before failing",
        "distributed", check=positive, requirement="use a positive number of seconds", resume="never",
    )
    # output
    out: str = option("results", "folder for checkpoints, history, curves and test metrics", "output",
                      resume="never")
    resume: bool = option(
        False, "continue each model from <out>/<model>_last.pt where it exists, with that run's options unless "
        "given again", "output", resume="never",
    )
    show_plots: bool = option(
        True, "never open figure windows; by default they open at the end when a display exists", "output",
        flag="--no-show", resume="never",
    )
    show_progress: bool = option(True, "no progress bars while training or evaluating", "output",
                                 flag="--no-progress", resume="never")


def with_learning_rates(options: TrainingOptions, model_name: str) -> TrainingOptions:
    """options for model_name, with the rates that fit where its weights come from where none were given."""
    rates = default_learning_rates(model_name, options.pretrained, options.weights)
    return replace(
        options,
        model=model_name,
        learning_rate=rates.learning_rate if options.learning_rate is None else options.learning_rate,
        backbone_lr_factor=(
            rates.backbone_lr_factor if options.backbone_lr_factor is None else options.backbone_lr_factor
        ),
    )
