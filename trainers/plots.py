"""Training curves of one model (<model>.png) and the side-by-side comparison of several (comparison.png)."""

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from helpers.figures import new_figure, save_figure

# (history column, panel title) of the three panels, in the order the original project drew them.
CURVE_PANELS = (("loss", "Loss (cross-entropy)"), ("acc", "Pixel accuracy"), ("miou", "Mean IoU"))


def _draw_panel(axes: Axes, title: str, curves: dict[str, tuple[list[int], list[float]]]) -> None:
    for label, (epochs, values) in curves.items():
        axes.plot(epochs, values, marker="o", markersize=3, label=label)
    axes.set_title(title)
    axes.set_xlabel("epoch")
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


def plot_comparison(histories: dict[str, list[dict]], path: str | Path, show: bool = False) -> Path:
    """Validation accuracy, loss and mIoU of every model against epochs, one line per model."""
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
                name: ([row["epoch"] for row in history], [row[column] for row in history])
                for name, history in histories.items()
            },
        )
    return save_figure(figure, path)
