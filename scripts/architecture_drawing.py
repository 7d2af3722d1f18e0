"""Block diagrams of traced models (scripts/architecture_trace.py) with matplotlib, for the README.

The axes span the whole figure and one data unit is one inch, so box sizes, gaps and font sizes are all
set in the same unit and the drawing reads the same whatever the numbers inside the boxes.
"""

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import FancyBboxPatch

from helpers.figures import new_figure, save_figure
from scripts.architecture_trace import Block, DeepLabV3Trace, UNetTrace

# 100 dpi: about 1200 px wide, sharp at README width and a PNG of well under 250 kB.
DPI = 100
TEXT_RENDERER = RendererAgg(1, 1, DPI)  # measures text only; nothing is drawn on it
FONT_SIZE = 9
LINE_HEIGHT = FONT_SIZE * 1.3 / 72  # inches between two lines of box text
TEXT_PADDING = 0.08  # inches kept free between a box's text and its sides
BOX_MARGIN = 0.25  # inches of box above and below its text
TITLE_SPACE = 0.65  # inches above the first row of boxes
# Fill colours by role: what comes in, what extracts features, the context module, what rebuilds the
# resolution, what scores classes.
COLOURS = {"input": "#eeeeee", "encoder": "#cfe2f3", "pool": "#f3f3f3", "context": "#fce5cd",
           "decoder": "#d9ead3", "classes": "#e6d0ec"}
ARROW_COLOUR = "#444444"
SKIP_COLOUR = "#3d78c2"


def new_canvas(width: float, height: float, title: str) -> tuple[Figure, Axes]:
    figure = new_figure(False, figsize=(width, height))
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, width)
    axes.set_ylim(0, height)
    axes.axis("off")
    axes.text(width / 2, height - TITLE_SPACE / 2, title, ha="center", va="center", fontsize=FONT_SIZE + 3,
              weight="bold")
    return figure, axes


def draw_box(axes: Axes, centre: tuple[float, float], size: tuple[float, float], lines: list[str],
             role: str) -> None:
    """A rounded box with its first line in bold, every line centred."""
    (x, y), (width, height) = centre, size
    axes.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                  boxstyle="round,pad=0,rounding_size=0.08", facecolor=COLOURS[role],
                                  edgecolor="#555555", linewidth=0.9, zorder=3))
    top = y + (len(lines) - 1) * LINE_HEIGHT / 2
    for index, line in enumerate(lines):
        axes.text(x, top - index * LINE_HEIGHT, line, ha="center", va="center", fontsize=FONT_SIZE,
                  weight="bold" if index == 0 else "normal", zorder=4)


def block_lines(block: Block, input_height: int, box_width: float) -> list[str]:
    """Name, detail broken into lines that fit box_width, and the output shape."""
    return [block.name, *wrap_detail(block.detail, box_width - 2 * TEXT_PADDING), block.shape_text(input_height)]


def text_width(text: str) -> float:
    """Inches that text takes at the box font size, as the Agg renderer that saves the figure draws it."""
    width, _, _ = TEXT_RENDERER.get_text_width_height_descent(text, FontProperties(size=FONT_SIZE), ismath=False)
    return width / DPI


def fill(tokens: list[str], separator: str, width: float) -> list[str]:
    """Tokens joined by separator, as many to a line as fit in width."""
    lines: list[str] = []
    for token in tokens:
        if lines and text_width(lines[-1] + separator + token) <= width:
            lines[-1] += separator + token
        else:
            lines.append(token)
    return lines


def wrap_detail(text: str, width: float) -> list[str]:
    """Lines that fit width, broken between the comma-separated parts of text where possible, so that
    '10 blocks, widths 80·112·160·960, dilation 2 in 13–15' keeps each part on one line."""
    if not text:
        return []
    parts = fill(text.split(", "), ", ", width)
    parts = [part + "," for part in parts[:-1]] + parts[-1:]
    return [line for part in parts for line in
            (fill(part.split(" "), " ", width) if text_width(part) > width else [part])]


def box_height(lines_of_boxes: list[list[str]]) -> float:
    """One height for a row of boxes: that of the one with the most lines."""
    return max(len(lines) for lines in lines_of_boxes) * LINE_HEIGHT + BOX_MARGIN


def draw_line(axes: Axes, points: list[tuple[float, float]], colour: str = ARROW_COLOUR, style: str = "-") -> None:
    axes.plot([x for x, _ in points], [y for _, y in points], color=colour, linewidth=1.2, linestyle=style, zorder=2)


def draw_arrow(axes: Axes, points: list[tuple[float, float]], colour: str = ARROW_COLOUR,
               dashed: bool = False) -> None:
    """A polyline through points with an arrowhead at the last one."""
    style = "--" if dashed else "-"
    if len(points) > 2:
        draw_line(axes, points[:-1], colour, style)
    axes.annotate("", xy=points[-1], xytext=points[-2], zorder=2,
                  arrowprops={"arrowstyle": "-|>", "color": colour, "linewidth": 1.2, "linestyle": style,
                              "shrinkA": 0, "shrinkB": 0, "mutation_scale": 12})


def draw_unet(trace: UNetTrace, input_block: Block, title: str, path: Path) -> Path:
    """U-shaped: the encoder goes down the left, the decoder up the right, skips cross between them."""
    input_height = input_block.height
    box_width, width = 2.9, 11.0
    blocks = [input_block, *trace.encoder, trace.bottleneck, *trace.decoder, trace.classifier]
    box = (box_width, box_height([block_lines(block, input_height, box_width) for block in blocks]))
    depth = len(trace.encoder)
    row_pitch = box[1] + 0.6  # room for a max-pool box between two encoder rows
    height = TITLE_SPACE + (depth + 1) * row_pitch + box[1] + 0.2
    encoder_x, decoder_x, bottleneck_x = 0.2 + box_width / 2, width - 0.2 - box_width / 2, width / 2

    def row_y(row: float) -> float:  # row 0: input and classifier; rows 1..depth: the levels; then the bottleneck
        return height - TITLE_SPACE - box[1] / 2 - row * row_pitch

    def draw(block: Block, centre: tuple[float, float], role: str) -> None:
        draw_box(axes, centre, box, block_lines(block, input_height, box_width), role)

    figure, axes = new_canvas(width, height, title)
    draw(input_block, (encoder_x, row_y(0)), "input")
    for level, (block, pool) in enumerate(zip(trace.encoder, trace.pools, strict=True)):
        top, bottom = row_y(level) - box[1] / 2, row_y(level + 1) + box[1] / 2
        draw_arrow(axes, [(encoder_x, top), (encoder_x, bottom)])
        draw(block, (encoder_x, row_y(level + 1)), "encoder")
        draw_arrow(axes, [(decoder_x, bottom), (decoder_x, top)])
        draw_box(axes, (encoder_x, row_y(level + 1.5)), (2.0, 0.27), [f"{pool.name} → {pool.height}×{pool.width}"],
                 "pool")
    # The last pool leads to the bottleneck in the middle of the U, and the bottleneck up to the decoder.
    bottom_y = row_y(depth + 1)
    draw_arrow(axes, [(encoder_x, row_y(depth) - box[1] / 2), (encoder_x, bottom_y),
                      (bottleneck_x - box_width / 2, bottom_y)])
    draw(trace.bottleneck, (bottleneck_x, bottom_y), "context")
    draw_arrow(axes, [(bottleneck_x + box_width / 2, bottom_y), (decoder_x, bottom_y),
                      (decoder_x, row_y(depth) - box[1] / 2)])
    for index, block in enumerate(trace.decoder):
        draw(block, (decoder_x, row_y(depth - index)), "decoder")
    for encoder_index, decoder_index in trace.skips:
        # Straight across when, as in this U-net, a skip joins an encoder and a decoder block of one level.
        y = row_y(encoder_index + 1)
        draw_arrow(axes, [(encoder_x + box_width / 2, y), (decoder_x - box_width / 2, row_y(depth - decoder_index))],
                   SKIP_COLOUR, dashed=True)
        axes.text(width / 2, y + 0.08, f"skip: {trace.encoder[encoder_index].channels} ch, concatenated",
                  ha="center", va="bottom", fontsize=FONT_SIZE, color=SKIP_COLOUR)
    draw(trace.classifier, (decoder_x, row_y(0)), "classes")
    return save_drawing(figure, path)


def draw_deeplabv3(trace: DeepLabV3Trace, input_block: Block, title: str, notes: list[str], path: Path) -> Path:
    """Backbone left to right along the top; ASPP branches, projection and head along the bottom."""
    input_height = input_block.height
    width = 13.0
    stages = [input_block, *trace.backbone]
    stage_pitch = (width - 0.2) / len(stages)
    stage_lines = [block_lines(stage, input_height, stage_pitch - 0.3) for stage in stages]
    stage_box = (stage_pitch - 0.3, box_height(stage_lines))
    branch_box = (2.8, 2 * LINE_HEIGHT + BOX_MARGIN)
    branch_pitch = branch_box[1] + 0.15
    branch_count = len(trace.aspp_branches)
    height = TITLE_SPACE + stage_box[1] + 0.55 + branch_count * branch_pitch + 0.2 + LINE_HEIGHT * len(notes) + 0.2
    figure, axes = new_canvas(width, height, title)
    top_y = height - TITLE_SPACE - stage_box[1] / 2
    for index, lines in enumerate(stage_lines):
        x = 0.1 + stage_pitch * (index + 0.5)
        draw_box(axes, (x, top_y), stage_box, lines, "input" if index == 0 else "encoder")
        if index:
            draw_arrow(axes, [(x - stage_pitch + stage_box[0] / 2, top_y), (x - stage_box[0] / 2, top_y)])
    # The last stage feeds every ASPP branch along a bus that runs down the left of their column.
    bus_y = top_y - stage_box[1] / 2 - 0.25
    branch_x, bus_x = 0.35 + branch_box[0] / 2, 0.15
    branch_ys = [bus_y - 0.3 - branch_pitch * (index + 0.5) for index in range(branch_count)]
    last_x = 0.1 + stage_pitch * (len(stages) - 0.5)
    draw_line(axes, [(last_x, top_y - stage_box[1] / 2), (last_x, bus_y), (bus_x, bus_y), (bus_x, branch_ys[-1])])
    merge_x = branch_x + branch_box[0] / 2 + 0.2
    for branch, y in zip(trace.aspp_branches, branch_ys, strict=True):
        draw_arrow(axes, [(bus_x, y), (branch_x - branch_box[0] / 2, y)])
        draw_box(axes, (branch_x, y), branch_box, [f"{branch.name}: {branch.detail}", branch.shape_text(input_height)],
                 "context")
        draw_line(axes, [(branch_x + branch_box[0] / 2, y), (merge_x, y)])
    draw_line(axes, [(merge_x, branch_ys[0]), (merge_x, branch_ys[-1])])
    head_blocks = [(trace.aspp_projection, "context"), (trace.head[0], "decoder"), (trace.head[1], "classes"),
                   (trace.output, "classes")]
    head_pitch = (width - merge_x - 0.1) / len(head_blocks)
    head_lines = [block_lines(block, input_height, head_pitch - 0.45) for block, _ in head_blocks]
    head_box = (head_pitch - 0.45, box_height(head_lines))
    middle_y, previous_edge = (branch_ys[0] + branch_ys[-1]) / 2, merge_x
    for index, ((_, role), lines) in enumerate(zip(head_blocks, head_lines, strict=True)):
        x = merge_x + head_pitch * (index + 0.5)
        draw_box(axes, (x, middle_y), head_box, lines, role)
        draw_arrow(axes, [(previous_edge, middle_y), (x - head_box[0] / 2, middle_y)])
        previous_edge = x + head_box[0] / 2
    for index, note in enumerate(notes):
        axes.text(0.15, 0.2 + LINE_HEIGHT * (len(notes) - 0.5 - index), note, ha="left", va="center",
                  fontsize=FONT_SIZE, style="italic")
    return save_drawing(figure, path)


def save_drawing(figure: Figure, path: Path) -> Path:
    return save_figure(figure, path, dpi=DPI)
