"""Matplotlib figures that are saved atomically and shown only where a window can actually open."""

import io
import os
import sys
from pathlib import Path

import matplotlib
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.figure import Figure
from PIL import Image

from helpers.atomic_files import atomic_write
from helpers.errors import ClothVisionError

# Backends that render to files only; plt.show() on them does nothing useful.
FILE_ONLY_BACKENDS = ("agg", "cairo", "pdf", "pgf", "ps", "svg", "template")


def display_available() -> bool:
    """True when plt.show() can put the figure in front of someone (a window or a notebook)."""
    backend = matplotlib.get_backend().lower()
    if backend in FILE_ONLY_BACKENDS:
        return False
    if backend.startswith("module://"):  # notebook backends draw inline, no display server needed
        return True
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def new_figure(show: bool, **figure_options) -> Figure:
    """A pyplot figure when it will be shown; otherwise a bare Figure, which needs no GUI toolkit."""
    if show:
        import matplotlib.pyplot as plt

        return plt.figure(**figure_options)
    return Figure(**figure_options)


def figure_format(path: str | Path) -> str:
    """The file format that path's extension names; checked before any drawing is spent on it."""
    path = Path(path)
    file_format = path.suffix.lower().lstrip(".")
    supported = FigureCanvasBase.get_supported_filetypes()
    if file_format not in supported:
        raise ClothVisionError(f"cannot save a figure as {path}: use one of the extensions "
                               f"{', '.join('.' + name for name in sorted(supported))}")
    return file_format


def save_figure(figure: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write figure to path atomically, in the format its extension names."""
    file_format = figure_format(path)
    if file_format != "png":
        return atomic_write(path, lambda temporary: figure.savefig(temporary, format=file_format, dpi=dpi))
    return atomic_write(path, lambda temporary: _save_opaque_png(figure, temporary, dpi))


def _save_opaque_png(figure: Figure, path: Path, dpi: int) -> None:
    """Our figures are opaque: PNGs without the alpha channel matplotlib writes, maximally compressed, are
    a fifth smaller, which matters for figures full of photos."""
    rendered = io.BytesIO()
    figure.savefig(rendered, format="png", dpi=dpi)
    with Image.open(rendered) as image:
        image.convert("RGB").save(path, format="PNG", optimize=True)


def finish_figure(figure: Figure, show: bool, save_to: str | Path | None = None) -> None:
    """Save figure when save_to is given, show it when asked, then free it."""
    if save_to is not None:
        save_figure(figure, save_to)
    if show:
        import matplotlib.pyplot as plt

        plt.show()
        plt.close(figure)
