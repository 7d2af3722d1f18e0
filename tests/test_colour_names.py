"""Garment colours: CIELAB from sRGB, the dominant colour of a garment despite shadows and patterns, and the
colour words people use for clothes."""

import numpy as np
import pytest

from helpers.colour_space import srgb_to_lab
from inference.colour_names import COLOUR_WORDS, dominant_colour, garment_colour

# Typical garment colours, none of them a reference point of colour_names.
KNOWN_COLOURS = {
    "black": [(12, 12, 14), (40, 38, 42)],
    "white": [(250, 250, 250), (232, 230, 222)],
    "grey": [(105, 105, 108), (160, 160, 158), (70, 72, 75)],
    "red": [(220, 20, 30), (160, 15, 25)],
    "orange": [(255, 140, 0), (230, 110, 40)],
    "yellow": [(255, 220, 0), (250, 235, 110)],
    "green": [(0, 128, 0), (60, 180, 75), (110, 125, 60)],
    "blue": [(0, 0, 255), (30, 80, 180), (100, 150, 220), (70, 100, 150)],
    "navy": [(20, 30, 70), (35, 45, 90)],
    "purple": [(128, 0, 128), (100, 50, 160)],
    "pink": [(255, 182, 193), (255, 105, 180)],
    "brown": [(139, 69, 19), (100, 60, 40), (155, 128, 115)],
    "beige": [(225, 205, 170), (205, 190, 160)],
}


def noisy_patch(colour: tuple[int, int, int], count: int = 2000, noise: float = 4.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.array(colour) + rng.normal(0, noise, (count, 3)), 0, 255).astype(np.uint8)


def in_shadow(colour: tuple[int, int, int], light: float) -> tuple[int, int, int]:
    """The colour under `light` times the light: scaled in linear RGB, as a shadow does, back to sRGB."""
    channels = np.array(colour) / 255
    linear = np.where(channels <= 0.04045, channels / 12.92, ((channels + 0.055) / 1.055) ** 2.4) * light
    srgb = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)
    return tuple(int(value) for value in np.round(srgb * 255))


def test_the_colour_words_are_the_basic_clothing_colours():
    assert set(COLOUR_WORDS) == set(KNOWN_COLOURS)


def test_srgb_to_lab_matches_the_cie_reference_values():
    lab = srgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 0, 255], [128, 128, 128]]))
    np.testing.assert_allclose(lab, [[100, 0, 0], [0, 0, 0], [53.24, 80.09, 67.20], [32.30, 79.19, -107.86],
                                     [53.59, 0, 0]], atol=0.02)


@pytest.mark.parametrize(("name", "colour"), [(name, colour) for name, colours in KNOWN_COLOURS.items()
                                              for colour in colours])
def test_uniform_patches_of_known_colours_get_their_names(name, colour):
    word, rgb = dominant_colour(noisy_patch(colour))
    assert word == name
    assert np.abs(np.array(rgb) - colour).max() <= 4


@pytest.mark.parametrize("name", COLOUR_WORDS)
@pytest.mark.parametrize("light", [0.5, 0.25])
def test_a_garment_half_in_shadow_keeps_its_name(name, light):
    colour = KNOWN_COLOURS[name][0]
    half_in_shadow = np.concatenate([noisy_patch(colour, seed=1), noisy_patch(in_shadow(colour, light), seed=2)])
    word, rgb = dominant_colour(half_in_shadow)
    assert word == name
    if name not in ("black", "navy"):  # too dark for their shadows' hue to be measured; their names hold anyway
        assert np.abs(np.array(rgb) - colour).max() <= 6  # the lit half's colour, not a blend


def test_a_pattern_is_named_by_its_dominant_colour_not_its_mean():
    # Navy with a third of white stripes: the mean is a mid blue nobody sees.
    striped = np.concatenate([noisy_patch((25, 35, 80), 1400), noisy_patch((245, 245, 245), 600)])
    assert dominant_colour(striped)[0] == "navy"
    # A black jacket with a few grey highlights stays black.
    highlighted = np.concatenate([noisy_patch((25, 25, 28), 1700), noisy_patch((90, 90, 95), 300)])
    assert dominant_colour(highlighted)[0] == "black"


def test_garment_colour_samples_a_bounded_seeded_set_of_pixels():
    photo = np.concatenate([noisy_patch((200, 30, 40), 50_000), noisy_patch((30, 40, 80), 50_000)])
    garment = np.arange(50_000)
    first = garment_colour(photo, garment, np.random.default_rng(0))
    assert first[0] == "red"
    assert garment_colour(photo, garment, np.random.default_rng(0)) == first
    assert garment_colour(photo, np.array([60_000]), np.random.default_rng(0))[0] == "navy"  # one pixel is enough
