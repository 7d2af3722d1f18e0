"""Figures stay readable whatever a dataset's colours: a palette with colours too close to tell apart (the
Kaggle class_dict.csv ramps through dark purples) is drawn with the generated qualitative palette, while
encoded files keep the dataset's colours."""

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_rgb
from PIL import Image
from synthetic_ccp import CLASS_NAMES, PALETTE

from helpers.colour_space import srgb_to_lab
from img_test import draw_prediction_figure
from label_decoder import MIN_DISTINCT_DELTA_E, LabelDecoder
from label_encoder import generate_palette


def ramp_palette(count: int) -> list[list[int]]:
    """One colour per class along viridis, as the Kaggle class_dict.csv has them: neighbours ~2 ΔE apart."""
    return [[round(channel * 255) for channel in colormaps["viridis"](index / (count - 1))[:3]]
            for index in range(count)]


def closest_distance(colours: np.ndarray) -> float:
    lab = srgb_to_lab(np.asarray(colours, dtype=np.float64))
    distances = np.linalg.norm(lab[:, None] - lab[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    return float(distances.min())


def legend_colours(decoder: LabelDecoder, shown_classes: list[int]) -> tuple[list[str], np.ndarray]:
    """The names and colours (0-255) of the legend of a prediction figure whose label and prediction hold
    shown_classes."""
    class_map = np.array([shown_classes * 4], dtype=np.uint8).reshape(4, -1)
    image = Image.new("RGB", (class_map.shape[1], class_map.shape[0]))
    figure = draw_prediction_figure(image, class_map, class_map, decoder, "title", show=False)
    [legend] = figure.legends
    handles = legend.legend_handles
    return ([handle.get_label() for handle in handles],
            np.array([to_rgb(handle.get_facecolor()) for handle in handles]) * 255)


def test_a_ramp_palette_is_drawn_with_distinct_colours():
    ramp = ramp_palette(len(CLASS_NAMES))
    decoder = LabelDecoder(CLASS_NAMES, ramp)
    shown = [0, 1, 2, 3, 30]
    assert closest_distance(np.array(ramp)[shown]) < 3  # the dataset's own colours: one purple smudge
    names, colours = legend_colours(decoder, shown)
    assert names == [CLASS_NAMES[index] for index in shown]
    assert closest_distance(colours) >= MIN_DISTINCT_DELTA_E
    np.testing.assert_allclose(colours, np.array(generate_palette(len(CLASS_NAMES)))[shown], atol=0.5)
    # Encoding keeps the dataset's colours: mask PNGs and labels read back with class_dict.csv.
    assert decoder.palette == ramp
    np.testing.assert_array_equal(decoder.decode(np.array([[0, 1]])), np.array([ramp[:2]], dtype=np.uint8))


def test_a_distinct_palette_is_drawn_as_it_is():
    decoder = LabelDecoder(CLASS_NAMES, PALETTE)
    assert decoder.closest_colour_distance() >= MIN_DISTINCT_DELTA_E
    assert decoder.for_figures() is decoder
    shown = [0, 5, 7, 19]
    _, colours = legend_colours(decoder, shown)
    np.testing.assert_allclose(colours, np.array(PALETTE)[shown], atol=0.5)


def test_the_generated_palette_itself_passes_the_threshold():
    """Else a ramp would be swapped for colours that are no easier to tell apart."""
    assert LabelDecoder(CLASS_NAMES, generate_palette(len(CLASS_NAMES))).closest_colour_distance() >= (
        MIN_DISTINCT_DELTA_E)
