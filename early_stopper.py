"""Early stopping on validation loss, with an optional guard against a widening train/validation gap."""

import math

from helpers.errors import ClothVisionError


class EarlyStopper:
    """Stop training after `patience` bad epochs.

    An epoch is bad when the validation loss does not beat the best so far by more than min_delta, or
    when it exceeds the training loss by more than max_loss_diff (the model is overfitting even if the
    validation loss still creeps down). A good epoch resets the count.

    max_loss_diff defaults to infinity, i.e. the gap test is off: the size of a meaningful gap depends on
    the loss (class weights scale cross-entropy) and on augmentation, which makes training loss higher than
    it would be on the plain images, so only the user can set it for a given run.
    """

    def __init__(self, patience: int = 7, min_delta: float = 0.0, max_loss_diff: float = math.inf):
        if patience < 1:
            raise ClothVisionError(f"early-stopping patience is {patience}: pass at least 1 epoch")
        if min_delta < 0 or max_loss_diff < 0:
            raise ClothVisionError(f"early-stopping min_delta {min_delta} or max_loss_diff {max_loss_diff} "
                                   "is negative: pass values of 0 or more")
        self.patience = patience
        self.min_delta = min_delta
        self.max_loss_diff = max_loss_diff
        self.best_val_loss = math.inf
        self.bad_epochs = 0

    def should_stop(self, train_loss: float, val_loss: float) -> bool:
        """Record one epoch's losses; True once `patience` bad epochs have accumulated."""
        improved = val_loss < self.best_val_loss - self.min_delta
        overfitting = val_loss - train_loss > self.max_loss_diff
        if improved:
            self.best_val_loss = val_loss
        self.bad_epochs = 0 if improved and not overfitting else self.bad_epochs + 1
        return self.stopped

    @property
    def stopped(self) -> bool:
        """True once `patience` bad epochs have accumulated (also right after load_state_dict)."""
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, float | int]:
        return {"best_val_loss": self.best_val_loss, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        self.best_val_loss = float(state["best_val_loss"])
        self.bad_epochs = int(state["bad_epochs"])
