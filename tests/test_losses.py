import pytest
import torch
import torch.nn.functional as F

from helpers.errors import ClothVisionError
from trainers.losses import LOSS_CHOICES, check_finite_loss, soft_jaccard_loss

IGNORE = 255


def one_hot_soft_jaccard(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The textbook form, with a one-hot tensor of the labels, as the reference of the scatter version."""
    num_classes = logits.shape[1]
    probabilities = torch.softmax(logits.double(), dim=1)
    valid = (labels != IGNORE).unsqueeze(1).double()
    one_hot = F.one_hot(labels.where(labels != IGNORE, 0).long(), num_classes).permute(0, 3, 1, 2).double() * valid
    intersection = (probabilities * one_hot).sum((0, 2, 3))
    union = (probabilities * valid + one_hot - probabilities * one_hot).sum((0, 2, 3))
    present = one_hot.sum((0, 2, 3)) > 0
    return 1 - (intersection[present] / union[present]).mean()


def random_batch(seed: int, num_classes: int = 7, shape: tuple[int, int, int] = (2, 5, 6)):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape[0], num_classes, *shape[1:], generator=generator) * 3
    # Classes 0..4 only: classes 5 and 6 are predicted but absent from the labels.
    labels = torch.randint(0, 5, shape, generator=generator)
    labels[torch.rand(shape, generator=generator) < 0.2] = IGNORE
    return logits, labels


def test_loss_choices():
    assert LOSS_CHOICES == ("ce", "ce+jaccard")


def test_a_perfect_one_hot_prediction_costs_nothing():
    labels = torch.tensor([[[0, 1, 2], [2, 2, IGNORE]]])
    logits = F.one_hot(labels.where(labels != IGNORE, 0), 4).permute(0, 3, 1, 2).float() * 100
    logits[0, :, 1, 2] = torch.tensor([0.0, 0.0, 0.0, 100.0])  # wrong only where the label is ignored
    assert soft_jaccard_loss(logits, labels, IGNORE).item() == pytest.approx(0.0, abs=1e-6)


def test_a_wholly_wrong_prediction_costs_one():
    labels = torch.zeros(1, 2, 2, dtype=torch.long)
    logits = torch.zeros(1, 3, 2, 2)
    logits[:, 1] = 100.0
    assert soft_jaccard_loss(logits, labels).item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_the_one_hot_reference_on_random_inputs(seed):
    logits, labels = random_batch(seed)
    expected = one_hot_soft_jaccard(logits, labels).item()
    assert soft_jaccard_loss(logits, labels, IGNORE).item() == pytest.approx(expected, abs=1e-6)
    assert 0.0 < expected < 1.0


def test_mean_is_over_the_classes_present_in_the_labels():
    # Two classes present, each given p = 0.5 on its own pixel; class 2 is predicted but never labelled.
    labels = torch.tensor([[[0, 1]]])
    probabilities = torch.tensor([[0.5, 0.25], [0.25, 0.5], [0.25, 0.25]])  # class × pixel
    logits = torch.log(probabilities).reshape(1, 3, 1, 2)
    # class 0: intersection 0.5, union 0.75 + 1 − 0.5 = 1.25 -> IoU 0.4; class 1 the same by symmetry.
    assert soft_jaccard_loss(logits, labels).item() == pytest.approx(1 - 0.4, abs=1e-6)


def test_ignored_pixels_do_not_change_the_loss():
    logits, labels = random_batch(3)
    reference = soft_jaccard_loss(logits, labels, IGNORE)
    changed = logits.clone()
    changed[labels.unsqueeze(1).expand_as(logits) == IGNORE] = 1e4 * torch.randn(1).item()
    assert soft_jaccard_loss(changed, labels, IGNORE).item() == pytest.approx(reference.item(), abs=1e-7)
    assert soft_jaccard_loss(logits, torch.full_like(labels, IGNORE), IGNORE).item() == 0.0


def test_gradients_flow_to_valid_pixels_only_and_lower_the_loss():
    logits, labels = random_batch(4)
    logits.requires_grad_(True)
    loss = soft_jaccard_loss(logits, labels, IGNORE)
    loss.backward()
    gradient_norms = logits.grad.norm(dim=1)
    assert torch.isfinite(logits.grad).all()
    assert (gradient_norms[labels == IGNORE] == 0).all() and (gradient_norms[labels != IGNORE] > 0).all()
    assert soft_jaccard_loss(logits.detach() - 1.0 * logits.grad, labels, IGNORE) < loss


def test_bf16_logits_are_scored_in_float32():
    logits, labels = random_batch(5)
    loss = soft_jaccard_loss(logits.bfloat16(), labels, IGNORE)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(one_hot_soft_jaccard(logits.bfloat16().float(), labels).item(), abs=1e-6)


def test_a_finite_loss_passes():
    check_finite_loss(torch.tensor(2.5), "unet", epoch=3, step=10)
    check_finite_loss(0.0, "unet", epoch=1, step=1)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_loss_stops_with_one_line_naming_the_model_step_and_fixes(value):
    with pytest.raises(ClothVisionError) as raised:
        check_finite_loss(torch.tensor(value), "mobilenetv3", epoch=4, step=117)
    message = str(raised.value)
    assert "\n" not in message and message.startswith("mobilenetv3: the training loss became ")
    assert str(value) in message and "epoch 4, step 117" in message
    assert all(fix in message for fix in ("lower --lr", "--precision fp32", "--resume continues from the last good"))
