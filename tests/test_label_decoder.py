import numpy as np
import pytest
import torch
from synthetic_ccp import CLASS_NAMES, PALETTE

from helpers.errors import ClothVisionError
from helpers.image_io import read_rgb_image
from label_decoder import LabelDecoder
from label_encoder import LabelEncoder


@pytest.fixture
def decoder():
    return LabelDecoder(CLASS_NAMES, PALETTE)


def test_decode_paints_each_class_with_its_palette_colour(decoder):
    index_map = np.array([[0, 1], [58, 1]], dtype=np.uint8)
    expected = [[PALETTE[0], PALETTE[1]], [PALETTE[58], PALETTE[1]]]
    np.testing.assert_array_equal(decoder.decode(index_map), expected)
    assert decoder.decode(index_map).dtype == np.uint8


def test_decode_is_the_exact_inverse_of_encode(decoder):
    encoder = LabelEncoder(CLASS_NAMES, PALETTE)
    index_map = np.random.default_rng(1).integers(0, 59, size=(23, 29))
    np.testing.assert_array_equal(encoder.encode(decoder.decode(index_map)), index_map)


def test_classes_in_lists_present_classes_in_index_order(decoder):
    index_map = torch.tensor([[7, 0, 7], [3, 3, 0]])
    assert decoder.classes_in(index_map) == [CLASS_NAMES[0], CLASS_NAMES[3], CLASS_NAMES[7]]
    assert decoder.classes_in(np.full((2, 2), 5)) == [CLASS_NAMES[5]]


@pytest.mark.parametrize("bad_index", [59, 200, -1])
def test_indices_outside_the_class_list_are_errors(decoder, bad_index):
    with pytest.raises(ClothVisionError, match=f"class index {bad_index} on 1 pixels"):
        decoder.decode(np.array([[0, bad_index]]))


def test_float_maps_are_rejected(decoder):
    with pytest.raises(TypeError):
        decoder.classes_in(np.zeros((2, 2)))


@pytest.mark.parametrize(("names", "palette", "expected"), [
    (CLASS_NAMES, PALETTE[:-1], "palette of shape"),
    (["a", "b"], [[0, 0, 0], [0, 0, 0]], "several classes"),
    (["a"], [[0, 0, 256]], "0-255"),
    ([], [], "expected 1 to 255"),
])
def test_inconsistent_palettes_are_rejected(names, palette, expected):
    with pytest.raises(ClothVisionError, match=expected):
        LabelDecoder(names, palette)


def test_real_kaggle_labels_decode_back_to_the_colored_pngs(kaggle_sample_dir):
    encoder = LabelEncoder.from_class_dict(kaggle_sample_dir / "class_dict.csv")
    decoder = LabelDecoder(encoder.class_names, encoder.palette)
    pngs = sorted((kaggle_sample_dir / "labels" / "pixel_level_labels_colored").glob("*.png"))
    assert len(pngs) == 24
    for png in pngs:
        decoded = decoder.decode(encoder.encode_file(png))
        np.testing.assert_array_equal(decoded, np.asarray(read_rgb_image(png)), err_msg=png.name)
