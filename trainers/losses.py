"""The training loss options, the class weights of the cross-entropy, and the check that stops a run whose loss
stopped being a number.

- ce:          cross-entropy, the original project's loss.
- ce+jaccard:  cross-entropy plus a soft-Jaccard (IoU) term, which rewards the rare classes that
               cross-entropy lets vanish; it is O(pixels × classes), unlike a sorting Lovász-softmax,
               which is too slow for a CPU.
"""

import math

import torch

from helpers.errors import ClothVisionError
from trainers.distributed import all_reduce_sum

LOSS_CHOICES = ("ce", "ce+jaccard")
CLASS_WEIGHT_CHOICES = ("none", "inverse-log-freq")
# ENet's class weighting (Paszke et al., 2016): w = 1 / ln(c + share of train pixels). ENet's c = 1.02 gives
# weights between 1.4 for a class covering every pixel and 50.5 for a very rare one; a larger c caps them
# (c = 1.2: at most 5.5), which trades less pixel accuracy for rare classes.
LOG_FREQUENCY_OFFSET = 1.02


def soft_jaccard_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """1 − the mean soft IoU of the classes present in the batch's labels, from softmax probabilities.

    logits N×C×H×W, labels N×H×W of class indices; pixels labelled ignore_index are skipped. The batch is
    pooled, as the mIoU metric pools a split: per class, intersection = Σ p(true class) over its pixels and
    union = Σ p(class) + its pixel count − intersection. Classes absent from the labels are left out (as
    the metric leaves out classes absent from the ground truth): probability given to them still costs,
    through the lower intersection of the pixels' true classes. No one-hot tensor of the labels is built;
    the sums run in float32 whatever the autocast. A batch with no valid pixel gives 0.
    """
    num_classes = logits.shape[1]
    probabilities = torch.softmax(logits.float(), dim=1)
    valid = labels != ignore_index
    classes = torch.where(valid, labels, 0).long()
    weight = valid.float()
    true_probability = probabilities.gather(1, classes.unsqueeze(1)).squeeze(1)
    zeros = probabilities.new_zeros(num_classes)
    intersection = zeros.scatter_add(0, classes.flatten(), (true_probability * weight).flatten())
    pixel_counts = zeros.scatter_add(0, classes.flatten(), weight.flatten())
    probability_sums = (probabilities * weight.unsqueeze(1)).sum((0, 2, 3))
    present = pixel_counts > 0
    # A present class's union holds at least its own pixels; absent classes divide by 1, then drop out.
    union = torch.where(present, probability_sums + pixel_counts - intersection, 1.0)
    return ((1.0 - intersection / union) * present).sum() / present.sum().clamp_min(1)


def check_finite_loss(loss_value: float | torch.Tensor, model_name: str, epoch: int, step: int) -> None:
    """Raise a one-line ClothVisionError when the training loss is NaN or infinite, so a diverged run stops
    at that step instead of writing NaN curves for hours."""
    value = float(loss_value)
    if not math.isfinite(value):
        raise ClothVisionError(
            f"{model_name}: the training loss became {value} at epoch {epoch}, step {step}; the run stopped with "
            f"its checkpoints at the last good epoch: lower --lr or train in float32 with --precision fp32, "
            f"and --resume continues from the last good epoch")


def stop_if_any_step_not_finite(non_finite: torch.Tensor, model_name: str, epoch: int, step: int) -> None:
    """End the run, on every rank, once any rank counted a NaN or infinite training loss: non_finite holds
    the count of such steps and the first of them, kept on the device so that a GPU is not made to wait each
    step. The checkpoints of the last finished epoch stay untouched, and --resume continues from them."""
    local_first = int(non_finite[1].item())
    if all_reduce_sum(non_finite.clone())[0].item() > 0:
        check_finite_loss(float("nan"), model_name, epoch, local_first or step)


def class_weights_from_counts(pixel_counts: list[int], scheme: str,
                              offset: float = LOG_FREQUENCY_OFFSET) -> torch.Tensor | None:
    """Per-class loss weights; None means unweighted; offset is inverse-log-freq's C in 1/ln(C + share).

    Classes with no train pixel get weight 0: the model can never learn them, so in the val loss they
    would only add a term that grows as the model grows confident about everything else.
    """
    if scheme == "none":
        return None
    if scheme != "inverse-log-freq":
        raise ClothVisionError(f"unknown class weighting '{scheme}': use one of {', '.join(CLASS_WEIGHT_CHOICES)}")
    counts = torch.tensor(pixel_counts, dtype=torch.float64)
    weights = 1.0 / torch.log(offset + counts / counts.sum())
    return torch.where(counts > 0, weights, 0.0).float()
