"""Training curves of one model (<model>.png) and the side-by-side comparison of several (comparison.png)."""

import itertools
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from helpers.figures import new_figure, save_figure

# (history column, panel title) of the three panels, in the order the original project drew them.
CURVE_PANELS = (("loss", "Loss (cross-entropy)"), ("acc", "Pixel accuracy"), ("miou", "Mean IoU"))


def _draw_panel(axes: Axes, title: str, curves: dict[str, tuple[list[float], list[float]]],
                x_label: str = "epoch") -> None:
    for label, (positions, values) in curves.items():
        axes.plot(positions, values, marker="o", markersize=3, label=label)
    axes.set_title(title)
    axes.set_xlabel(x_label)
    if x_label == "epoch":
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    axes.legend()


def plot_training_curves(history: list[dict], model_name: str, path: str | Path, show: bool = False) -> Path:
    """Loss and pixel accuracy of train and val, and val mIoU, against epochs."""
    figure = new_figure(show, figsize=(15, 4.2), layout="constrained")
    figure.suptitle(f"{model_name}: training curves")
    epochs = [row["epoch"] for row in history]
    for axes, (column, title) in zip(figure.subplots(1, len(CURVE_PANELS)), CURVE_PANELS, strict=True):
        splits = [split for split in ("train", "val") if f"{split}_{column}" in history[0]]
        _draw_panel(axes, title, {split: (epochs, [row[f"{split}_{column}"] for row in history]) for split in splits})
    return save_figure(figure, path)


def training_minutes(history: list[dict]) -> list[float]:
    """The training minutes at the end of each epoch: the axis on which equal-time runs compare."""
    return list(itertools.accumulate(row["seconds"] / 60 for row in history))


def plot_comparison(histories: dict[str, list[dict]], path: str | Path, show: bool = False,
                    against_minutes: bool = False) -> Path:
    """Validation accuracy, loss and mIoU of every model against epochs (or, against_minutes, against
    training minutes), one line per model."""
    panels = (
        ("val_acc", "Validation pixel accuracy"),
        ("val_loss", "Validation loss"),
        ("val_miou", "Validation mIoU"),
    )
    figure = new_figure(show, figsize=(15, 4.2), layout="constrained")
    figure.suptitle("Model comparison")
    for axes, (column, title) in zip(figure.subplots(1, len(panels)), panels, strict=True):
        _draw_panel(
            axes,
            title,
            {
                name: (training_minutes(history) if against_minutes else [row["epoch"] for row in history],
                       [row[column] for row in history])
                for name, history in histories.items()
            },
            "training minutes" if against_minutes else "epoch",
        )
    return save_figure(figure, path)
