"""TrainingOptions: everything about a training run that is not the model or the data, with its defaults
(train.py's command line and train() read them here), and the per-class loss weights it may ask for."""

from dataclasses import dataclass

import torch

from helpers.errors import ClothVisionError
from models import FROM_SCRATCH_RATES
from models.unet import DEFAULT_BASE_WIDTH

CLASS_WEIGHT_CHOICES = ("none", "inverse-log-freq")
# ENet's class weighting (Paszke et al., 2016): w = 1 / ln(1.02 + share of train pixels), between 1.4 for a
# class covering every pixel and 50.5 for a very rare one.
LOG_FREQUENCY_OFFSET = 1.02


@dataclass
class TrainingOptions:
    """Everything about a run that is not the model or the data; saved as the checkpoint's 'args'."""

    epochs: int = 32
    batch_size: int = 8
    learning_rate: float = FROM_SCRATCH_RATES.learning_rate
    class_weights: str = "none"
    seed: int = 0
    patience: int = 7
    min_delta: float = 0.0
    max_loss_diff: float = float("inf")
    compile_model: bool = False
    sync_batchnorm: bool = False
    backbone_lr_factor: float = FROM_SCRATCH_RATES.backbone_lr_factor
    freeze_backbone_epochs: int = 0
    precision: str = "auto"
    # Flips only: in the CPU study's ablation (U-net, 25 epochs at 240×144) full augmentation reached test
    # 83.1 % / mIoU 0.065 against 85.9 % / 0.093 with flips; these short runs underfit, and zooming and
    # colour jitter make the task harder still. --augment full is there for longer schedules.
    augment: str = "flip"
    # Training stops after the epoch past which one more (of the mean length so far) would exceed this.
    time_limit_minutes: float = float("inf")
    show_progress: bool = True


@dataclass(frozen=True)
class RunDefaults:
    """The defaults of train.py's other settings: what it trains, where its data and outputs are."""

    model: str = "unet"
    data: str = "data/processed"
    out: str = "results"
    device: str = "auto"
    pretrained: str = "imagenet"
    unet_base_width: int = DEFAULT_BASE_WIDTH
    dist_timeout: float = 600.0


# The one place the training defaults are written: train()'s signature and the command line read them here.
DEFAULT_OPTIONS = TrainingOptions()
DEFAULT_RUN = RunDefaults()


def class_weights_from_counts(pixel_counts: list[int], scheme: str) -> torch.Tensor | None:
    """Per-class loss weights; None means unweighted.

    Classes with no train pixel get weight 0: the model can never learn them, so in the val loss they
    would only add a term that grows as the model grows confident about everything else.
    """
    if scheme == "none":
        return None
    if scheme != "inverse-log-freq":
        raise ClothVisionError(f"unknown class weighting '{scheme}': use one of {', '.join(CLASS_WEIGHT_CHOICES)}")
    counts = torch.tensor(pixel_counts, dtype=torch.float64)
    weights = 1.0 / torch.log(LOG_FREQUENCY_OFFSET + counts / counts.sum())
    return torch.where(counts > 0, weights, 0.0).float()
