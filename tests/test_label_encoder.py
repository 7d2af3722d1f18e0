import pickle

import numpy as np
import pytest
import scipy.io
from PIL import Image
from synthetic_ccp import CLASS_NAMES, PALETTE

from helpers.errors import ClothVisionError
from label_encoder import LabelEncoder, generate_palette


@pytest.fixture
def encoder():
    return LabelEncoder(CLASS_NAMES, PALETTE)


def test_encode_maps_every_palette_colour_to_its_class(encoder):
    index_map = np.random.default_rng(0).integers(0, len(CLASS_NAMES), size=(31, 17)).astype(np.uint8)
    colours = np.array(PALETTE, dtype=np.uint8)[index_map]
    encoded = encoder.encode(colours)
    assert encoded.dtype == np.uint8 and encoded.shape == (31, 17)
    np.testing.assert_array_equal(encoded, index_map)


def test_encode_handles_views_single_pixels_and_the_last_pixel(encoder):
    index_map = np.random.default_rng(2).integers(0, len(CLASS_NAMES), size=(9, 12)).astype(np.uint8)
    colours = np.array(PALETTE, dtype=np.uint8)[index_map]
    np.testing.assert_array_equal(encoder.encode(colours[1::2, ::3]), index_map[1::2, ::3])
    np.testing.assert_array_equal(encoder.encode(colours[-1:, -1:]), index_map[-1:, -1:])
    colours[-1, -1] = (7, 7, 7)
    with pytest.raises(ClothVisionError, match=r"\(7, 7, 7\) on 1 pixels"):
        encoder.encode(colours)


def test_unknown_colour_names_file_colour_and_pixel_count(encoder):
    colours = np.array(PALETTE, dtype=np.uint8)[np.zeros((10, 10), dtype=np.uint8)]
    colours[0, :7] = (1, 2, 3)
    colours[5, :2] = (250, 250, 250)
    with pytest.raises(ClothVisionError) as raised:
        encoder.encode(colours, source="labels/0042.png")
    message = str(raised.value)
    assert "labels/0042.png" in message and "(1, 2, 3) on 7 pixels" in message
    assert "1 more unknown colour" in message and "\n" not in message


@pytest.mark.parametrize("array", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8),
                                   np.zeros((4, 4, 3), np.int32)])
def test_encode_rejects_arrays_that_are_not_rgb_uint8(encoder, array):
    with pytest.raises(ClothVisionError, match="H×W×3 uint8"):
        encoder.encode(array)


def test_class_dict_gives_names_and_colours_and_png_matches_mat(kaggle_synthetic):
    encoder = LabelEncoder.from_class_dict(kaggle_synthetic / "class_dict.csv")
    assert encoder.class_names == ["none"] + CLASS_NAMES[1:]
    assert encoder.palette == PALETTE
    labels = kaggle_synthetic / "labels"
    for png in sorted((labels / "pixel_level_labels_colored").glob("*.png")):
        from_png = encoder.encode_file(png)
        from_mat = encoder.encode_file(labels / "pixel_level_labels_mat" / f"{png.stem}.mat")
        assert from_png.max() > 0
        np.testing.assert_array_equal(from_png, from_mat)


def test_palette_mode_png_is_read_as_its_colours(tmp_path, encoder):
    index_map = np.arange(12, dtype=np.uint8).reshape(3, 4)
    image = Image.fromarray(index_map, mode="P")
    image.putpalette(np.array(PALETTE, dtype=np.uint8).ravel().tolist())
    image.save(tmp_path / "label.png")
    np.testing.assert_array_equal(encoder.encode_file(tmp_path / "label.png"), index_map)


def test_label_list_mat_gives_names_and_a_fixed_palette(ccp_synthetic):
    encoder = LabelEncoder.from_label_list_mat(ccp_synthetic / "label_list.mat")
    assert encoder.class_names == CLASS_NAMES
    assert encoder.palette == generate_palette(59)


def test_generated_palette_is_fixed_distinct_and_black_for_background():
    palette = np.array(generate_palette(59), dtype=float)
    assert palette[0].tolist() == [0, 0, 0]
    assert generate_palette(59) == generate_palette(59)
    distances = np.sqrt(((palette[:, None] - palette[None]) ** 2).sum(-1))
    np.fill_diagonal(distances, np.inf)
    assert distances.min() >= 32
    assert palette.min() >= 0 and palette.max() <= 255


@pytest.mark.parametrize(("contents", "expected"), [
    ("", "expected 'class_name,r,g,b'"),
    ("name,red,green,blue\nnone,0,0,0\n", "expected 'class_name,r,g,b'"),
    ("class_name,r,g,b\n", "no classes"),
    ("class_name,r,g,b\nnone,0,0\n", "line 2"),
    ("class_name,r,g,b\nnone,0,0,0\nbag,1,x,3\n", "line 3"),
    ("class_name,r,g,b\nnone,0,0,0\nbag,1,2,300\n", "line 3"),
    ("class_name,r,g,b\nnone,0,0,0\nbag,0,0,0\n", "several classes"),
])
def test_malformed_class_dict_is_a_one_line_error(tmp_path, contents, expected):
    path = tmp_path / "class_dict.csv"
    path.write_text(contents)
    with pytest.raises(ClothVisionError, match=expected) as raised:
        LabelEncoder.from_class_dict(path)
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)


def test_mat_with_class_index_beyond_the_class_list_is_an_error(tmp_path, encoder):
    groundtruth = np.zeros((5, 5), dtype=np.uint8)
    groundtruth[1, :3] = 59
    scipy.io.savemat(tmp_path / "0001.mat", {"groundtruth": groundtruth})
    with pytest.raises(ClothVisionError, match="class index 59 on 3 pixels"):
        encoder.encode_file(tmp_path / "0001.mat")


@pytest.mark.parametrize(("write", "expected"), [
    (lambda path: scipy.io.savemat(path, {"labels": np.zeros((3, 3))}), "no 'groundtruth' variable"),
    (lambda path: path.write_bytes(b"this is not a MATLAB file at all" * 8), "not a readable MATLAB"),
    (lambda path: scipy.io.savemat(path, {"groundtruth": np.full((3, 3), 0.5)}), "fractional"),
    (lambda path: scipy.io.savemat(path, {"groundtruth": np.zeros((2, 3, 3))}), "not an H×W map"),
])
def test_foreign_mat_files_are_one_line_errors(tmp_path, encoder, write, expected):
    path = tmp_path / "0001.mat"
    write(path)
    with pytest.raises(ClothVisionError, match=expected) as raised:
        encoder.encode_file(path)
    assert str(path) in str(raised.value)


def test_truncated_mat_is_an_error(tmp_path, encoder):
    path = tmp_path / "0001.mat"
    scipy.io.savemat(path, {"groundtruth": np.arange(400, dtype=np.uint8).reshape(20, 20) % 59})
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ClothVisionError, match="not a readable MATLAB"):
        encoder.encode_file(path)


def test_pickled_encoder_leaves_its_lookup_table_behind(encoder):
    encoder.encode(np.zeros((2, 2, 3), dtype=np.uint8) + np.array(PALETTE[0], dtype=np.uint8))
    copy = pickle.loads(pickle.dumps(encoder))
    assert len(pickle.dumps(encoder)) < 100_000
    colours = np.array(PALETTE, dtype=np.uint8)[np.array([[3, 4]])]
    np.testing.assert_array_equal(copy.encode(colours), [[3, 4]])


def test_real_kaggle_colored_pngs_encode_to_their_mat_files(kaggle_sample_dir):
    encoder = LabelEncoder.from_class_dict(kaggle_sample_dir / "class_dict.csv")
    pngs = sorted((kaggle_sample_dir / "labels" / "pixel_level_labels_colored").glob("*.png"))
    assert len(pngs) == 24
    for png in pngs:
        mat_path = kaggle_sample_dir / "labels" / "pixel_level_labels_mat" / f"{png.stem}.mat"
        expected = scipy.io.loadmat(mat_path)
        np.testing.assert_array_equal(encoder.encode_file(png), expected["groundtruth"], err_msg=png.name)
