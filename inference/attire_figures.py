"""Figures of descriptions: one photo with its class overlay and its garments, and the contact sheet of a
search (the best photos with their overlays, scores and descriptions)."""

import math
import textwrap

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from helpers.figures import new_figure
from inference.attire import DescribedPhoto
from inference.search import Match

PANEL_WIDTH_INCHES = 2.3
CAPTION_CHARACTERS_PER_INCH = 14
CAPTION_LINE_INCHES = 0.17
GARMENT_ROW_INCHES = 0.24
SHEET_COLUMNS = 5
SHEET_PANEL_WIDTH_INCHES = 1.0
SHEET_PANEL_FILL = 0.85


def wrapped(text: str, width_inches: float) -> str:
    return textwrap.fill(text, max(12, int(width_inches * CAPTION_CHARACTERS_PER_INCH)))


def caption_lines(text: str, width_inches: float) -> int:
    return wrapped(text, width_inches).count("\n") + 1


def share_text(share: float) -> str:
    return "<1 %" if share < 0.005 else f"{100 * share:.0f} %"


def photo_height_inches(described: DescribedPhoto, width_inches: float) -> float:
    # Tall photos get tall panels; odd shapes (a 1-pixel strip) stay readable.
    image = described.image
    return min(max(width_inches * image.height / image.width, 1.0), 2.2 * width_inches)


def draw_description_figure(described: DescribedPhoto, title: str, show: bool) -> Figure:
    """Photo | overlay of its classes, above one row per garment: measured colour, words and share."""
    garments = described.description.garments
    height = photo_height_inches(described, PANEL_WIDTH_INCHES)
    rows_height = GARMENT_ROW_INCHES * max(len(garments), 1)
    figure = new_figure(show, figsize=(2 * PANEL_WIDTH_INCHES, height + rows_height + 0.8), layout="constrained")
    grid = figure.add_gridspec(2, 2, height_ratios=(height, rows_height))
    overlay_title = "Label" if described.description.source == "label" else "Prediction"
    decoder = described.decoder.for_figures()
    for column, (panel_title, picture) in enumerate(
            (("Photo", described.image), (overlay_title, decoder.overlay(described.image, described.class_map)))):
        axis = figure.add_subplot(grid[0, column])
        axis.imshow(np.asarray(picture))
        axis.set_title(panel_title)
        axis.set_axis_off()
    table = figure.add_subplot(grid[1, :])
    table.set_title("Garments, largest first: colour measured on the photo | colour in the overlay",
                    fontsize="small", loc="left")
    table.set_axis_off()
    table.set_xlim(0, 1)
    table.set_ylim(len(garments) or 1, 0)
    palette = np.asarray(decoder.palette) / 255
    names = decoder.class_names
    for row, garment in enumerate(garments):
        table.add_patch(Rectangle((0.02, row + 0.15), 0.06, 0.7, facecolor=np.array(garment.rgb) / 255,
                                  edgecolor="0.5"))
        table.add_patch(Rectangle((0.1, row + 0.15), 0.03, 0.7, facecolor=palette[names.index(garment.name)],
                                  edgecolor="0.5"))
        table.text(0.16, row + 0.5, f"{garment.words()}  ({garment.group}, {share_text(garment.share)} of the person)",
                   va="center", fontsize="small")
    if not garments:
        table.text(0.02, 0.5, described.description.text(), va="center", fontsize="small")
    figure.suptitle(title)
    return figure


def draw_contact_sheet(matches: list[tuple[Match, DescribedPhoto]], query: str, show: bool) -> Figure:
    """The ranked photos in a grid, each as photo | overlay of its classes, with rank, score and description."""
    columns = min(SHEET_COLUMNS, len(matches))
    rows = math.ceil(len(matches) / columns)
    cell_width = 2 * SHEET_PANEL_WIDTH_INCHES
    # The panels lose some width to the margins between them; their height follows what is left.
    photo_height = max(photo_height_inches(described, SHEET_PANEL_WIDTH_INCHES * SHEET_PANEL_FILL)
                       for _, described in matches)
    caption_height = CAPTION_LINE_INCHES * max(caption_lines(match.description.text(), cell_width)
                                               for match, _ in matches)
    figure = new_figure(show, figsize=(columns * cell_width, rows * (photo_height + caption_height + 0.35) + 0.4),
                        layout="constrained")
    cells = figure.subfigures(rows, columns, squeeze=False).ravel()
    for rank, (cell, (match, described)) in enumerate(zip(cells, matches, strict=False), start=1):
        overlay = described.decoder.for_figures().overlay(described.image, described.class_map)
        for axis, picture in zip(cell.subplots(1, 2, gridspec_kw={"wspace": 0.03}), (described.image, overlay),
                                 strict=True):
            axis.imshow(np.asarray(picture))
            axis.set_axis_off()
        cell.suptitle(f"{rank}. {match.description.image}  score {match.score:.2f}", fontsize="small")
        cell.supxlabel(wrapped(match.description.text(), cell_width), fontsize="x-small")
    figure.suptitle(f"Best matches for “{query}”")
    return figure
