import math

import pytest
import torch

from early_stopper import EarlyStopper
from helpers.errors import ClothVisionError


def first_stopping_epoch(stopper: EarlyStopper, train_losses: list[float],
                         val_losses: list[float]) -> int | None:
    """The 1-based epoch at which the stopper asks to stop, or None if it never does."""
    for epoch, (train_loss, val_loss) in enumerate(zip(train_losses, val_losses, strict=True), start=1):
        if stopper.should_stop(train_loss, val_loss):
            return epoch
    return None


def test_stops_after_patience_epochs_without_improvement():
    val_losses = [1.0, 0.9, 0.95, 0.91, 0.92, 0.5]
    stopper = EarlyStopper(patience=3)
    # Epochs 3, 4 and 5 do not beat 0.9: the third of them stops training.
    assert first_stopping_epoch(stopper, [0.0] * 6, val_losses) == 5
    assert stopper.best_val_loss == 0.9
    assert stopper.bad_epochs == 3


def test_an_improvement_resets_the_count():
    val_losses = [1.0, 1.1, 0.9, 1.0, 0.8, 0.85]
    stopper = EarlyStopper(patience=2)
    assert first_stopping_epoch(stopper, [0.0] * 6, val_losses) is None
    assert stopper.bad_epochs == 1
    assert stopper.best_val_loss == 0.8


def test_improvements_within_min_delta_count_as_bad_epochs():
    stopper = EarlyStopper(patience=2, min_delta=0.1)
    # 0.95 is only 0.05 better than 1.0 (bad); 0.85 beats 1.0 by 0.15 (good, best becomes 0.85);
    # 0.80 and 0.79 beat 0.85 by less than 0.1: the second of them stops.
    assert first_stopping_epoch(stopper, [0.0] * 6, [1.0, 0.95, 0.85, 0.80, 0.79, 0.1]) == 5
    assert stopper.best_val_loss == 0.85


def test_a_widening_train_val_gap_stops_even_while_val_loss_improves():
    train_losses = [1.0, 0.5, 0.3, 0.2]
    val_losses = [1.2, 1.1, 1.0, 0.9]
    stopper = EarlyStopper(patience=2, max_loss_diff=0.5)
    # Gaps 0.2 (good), 0.6 (bad), 0.7 (bad: second bad epoch stops).
    assert first_stopping_epoch(stopper, train_losses, val_losses) == 3
    assert stopper.best_val_loss == 1.0
    # Without the gap guard (the default) the same run keeps going.
    assert first_stopping_epoch(EarlyStopper(patience=2), train_losses, val_losses) is None


def test_an_epoch_that_is_both_stale_and_overfitting_counts_once():
    stopper = EarlyStopper(patience=2, max_loss_diff=0.1)
    # Epoch 2 neither improves on 0.5 nor keeps the gap (0.5) under 0.1: one bad epoch, not two.
    assert first_stopping_epoch(stopper, [0.5, 0.1], [0.5, 0.6]) is None
    assert stopper.bad_epochs == 1
    assert stopper.should_stop(0.1, 0.55)


def test_a_nan_validation_loss_is_a_bad_epoch():
    stopper = EarlyStopper(patience=1)
    assert not stopper.should_stop(0.3, 1.0)
    assert stopper.should_stop(0.3, math.nan)
    assert stopper.best_val_loss == 1.0


def test_resuming_from_the_state_dict_stops_at_the_same_epoch(tmp_path):
    train_losses = [1.0, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
    val_losses = [1.0, 0.9, 0.95, 0.97, 0.91, 0.99, 0.93]
    uninterrupted = first_stopping_epoch(EarlyStopper(patience=4), train_losses, val_losses)
    assert uninterrupted == 6

    before = EarlyStopper(patience=4)
    assert first_stopping_epoch(before, train_losses[:4], val_losses[:4]) is None
    # The state goes through a checkpoint, which must load with the weights-only unpickler.
    torch.save({"early_stopper": before.state_dict()}, tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)["early_stopper"]
    after = EarlyStopper(patience=4)
    after.load_state_dict(state)
    assert after.state_dict() == {"best_val_loss": 0.9, "bad_epochs": 2}
    assert first_stopping_epoch(after, train_losses[4:], val_losses[4:]) == uninterrupted - 4


@pytest.mark.parametrize("arguments", [{"patience": 0}, {"min_delta": -0.1}, {"max_loss_diff": -1.0}])
def test_invalid_settings_are_refused(arguments):
    with pytest.raises(ClothVisionError, match="early-stopping"):
        EarlyStopper(**arguments)
