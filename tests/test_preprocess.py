import json
import re
import shlex

import numpy as np
import pytest
import scipy.io
from PIL import Image
from synthetic_ccp import CLASS_NAMES, PALETTE, write_ccp_layout, write_kaggle_layout

from dataset import load_cache
from helpers.errors import ClothVisionError, run_cli
from label_encoder import generate_palette
from preprocess import main, preprocess, split_rows

SIZE = (20, 14)


def nearest_resized(label: np.ndarray, size=SIZE) -> np.ndarray:
    return np.asarray(Image.fromarray(label).resize(size[::-1], Image.Resampling.NEAREST))


def bilinear_resized(photo_path, size=SIZE) -> np.ndarray:
    with Image.open(photo_path) as photo:
        resized = photo.convert("RGB").resize(size[::-1], Image.Resampling.BILINEAR)
    return np.asarray(resized).transpose(2, 0, 1)


def read_cache(cache_dir):
    meta = json.loads((cache_dir / "meta.json").read_text())
    return np.load(cache_dir / "images.npy"), np.load(cache_dir / "labels.npy"), meta


def test_original_layout_cache_holds_resized_photos_labels_and_meta(ccp_synthetic, tmp_path):
    cache_dir = preprocess(ccp_synthetic, tmp_path / "cache", size=SIZE, workers=1)
    assert sorted(path.name for path in cache_dir.iterdir()) == ["images.npy", "labels.npy", "meta.json",
                                                                 "native_labels.npz"]
    images, labels, meta = read_cache(cache_dir)
    assert images.dtype == np.uint8 and images.shape == (6, 3, *SIZE)
    assert labels.dtype == np.uint8 and labels.shape == (6, *SIZE)
    assert meta["ids"] == ["0001", "0002", "0003", "0004", "0005", "0006"]
    for row, image_id in enumerate(meta["ids"]):
        groundtruth = scipy.io.loadmat(ccp_synthetic / "annotations" / "pixel-level" / f"{image_id}.mat")
        np.testing.assert_array_equal(labels[row], nearest_resized(groundtruth["groundtruth"]))
        photo = ccp_synthetic / "photos" / f"{image_id}.jpg"
        np.testing.assert_array_equal(images[row], bilinear_resized(photo))
    assert meta["format_version"] == 2 and meta["source_layout"] == "ccp"
    assert meta["source_dir"] == str(ccp_synthetic.resolve())
    assert meta["class_names"] == CLASS_NAMES and meta["palette"] == generate_palette(59)
    assert meta["image_size"] == list(SIZE) and meta["seed"] == 0
    assert meta["mean"] == [0.485, 0.456, 0.406] and meta["std"] == [0.229, 0.224, 0.225]
    assert meta["split_fractions"] == [0.7, 0.15, 0.15]
    assert meta["split"] == split_rows(6, seed=0)
    train_pixels = np.bincount(labels[meta["split"]["train"]].ravel(), minlength=59)
    assert meta["train_class_pixel_counts"] == train_pixels.tolist()


def test_kaggle_layout_labels_come_from_the_colours_and_match_the_original_layout(tmp_path, kaggle_synthetic):
    # Both synthetic layouts are drawn from the same seed, so they hold the same photos and labels.
    ccp_layout = write_ccp_layout(tmp_path / "ccp")
    original = preprocess(ccp_layout, tmp_path / "original_cache", size=SIZE, workers=1)
    kaggle = preprocess(kaggle_synthetic, tmp_path / "kaggle_cache", size=SIZE, workers=1)
    original_images, original_labels, _ = read_cache(original)
    kaggle_images, kaggle_labels, meta = read_cache(kaggle)
    np.testing.assert_array_equal(kaggle_labels, original_labels)
    np.testing.assert_array_equal(kaggle_images, original_images)
    assert meta["source_layout"] == "kaggle"
    assert meta["class_names"] == ["none"] + CLASS_NAMES[1:] and meta["palette"] == PALETTE


def assert_native_labels_are_the_annotations(cache, mat_folder):
    """Every label at its own size equals the .mat annotation in mat_folder."""
    for split in ("train", "val", "test"):
        ids = [cache.meta["ids"][row] for row in cache.split_indices(split)]
        labels = cache.native_labels(split)
        assert len(labels) == len(ids) > 0
        for image_id, label in zip(ids, labels, strict=True):
            assert label.dtype == np.uint8
            groundtruth = scipy.io.loadmat(mat_folder / f"{image_id}.mat")["groundtruth"]
            np.testing.assert_array_equal(label, groundtruth, err_msg=image_id)
            assert cache.meta["native_label_shapes"][image_id] == list(label.shape)
    assert set(cache.meta["native_label_shapes"]) == set(cache.meta["ids"])


@pytest.mark.parametrize(("write_layout", "mat_folder"), [(write_ccp_layout, "annotations/pixel-level"),
                                                         (write_kaggle_layout, "labels/pixel_level_labels_mat")])
def test_labels_are_kept_at_their_own_size_in_either_layout(tmp_path, write_layout, mat_folder):
    # Heights 40 to 49 and 28 wide, cached at 20x14: every native label has its own shape. The Kaggle
    # layout's are decoded from its colour PNGs and must equal the class indices of its .mat copies.
    root = write_layout(tmp_path / "data", count=10, taller_by=1)
    cache = load_cache(preprocess(root, tmp_path / "cache", size=SIZE, workers=2))
    assert_native_labels_are_the_annotations(cache, root / mat_folder)
    assert {tuple(shape) for shape in cache.meta["native_label_shapes"].values()} == {
        (40 + row, 28) for row in range(10)}


def test_parallel_workers_write_the_same_cache_as_one_process(ccp_synthetic, tmp_path):
    serial = read_cache(preprocess(ccp_synthetic, tmp_path / "serial", size=SIZE, workers=1))
    parallel = read_cache(preprocess(ccp_synthetic, tmp_path / "parallel", size=SIZE, workers=2))
    np.testing.assert_array_equal(parallel[0], serial[0])
    np.testing.assert_array_equal(parallel[1], serial[1])
    assert parallel[2] == serial[2]


def test_split_is_seeded_disjoint_complete_and_documented_sizes():
    split = split_rows(1004, seed=0)
    assert [len(split[name]) for name in ("train", "val", "test")] == [702, 151, 151]
    assert sorted(split["train"] + split["val"] + split["test"]) == list(range(1004))
    assert split == split_rows(1004, seed=0)
    assert split != split_rows(1004, seed=1)
    assert [len(part) for part in split_rows(3, seed=0).values()] == [1, 1, 1]
    assert [len(part) for part in split_rows(40, seed=5).values()] == [28, 6, 6]


def test_photos_without_labels_are_ignored_and_counted(ccp_synthetic, tmp_path, capsys):
    Image.new("RGB", (28, 40)).save(ccp_synthetic / "photos" / "1500.jpg")
    _, labels, meta = read_cache(preprocess(ccp_synthetic, tmp_path / "cache", size=SIZE, workers=1))
    assert "1500" not in meta["ids"] and len(labels) == 6
    assert "6 photos with pixel-level labels, 1 photos without them ignored" in capsys.readouterr().out


def test_limit_seed_and_size_flags_from_the_command_line(ccp_synthetic, tmp_path):
    cache_dir = tmp_path / "cache"
    argv = ["--data", str(ccp_synthetic), "--out", str(cache_dir), "--size", "12", "8", "--limit", "4",
            "--seed", "3", "--workers", "1"]
    assert run_cli(main, argv) == 0
    images, labels, meta = read_cache(cache_dir)
    assert images.shape == (4, 3, 12, 8) and labels.shape == (4, 12, 8)
    assert meta["ids"] == ["0001", "0002", "0003", "0004"]
    assert meta["seed"] == 3 and meta["split"] == split_rows(4, seed=3)


@pytest.mark.parametrize(("flags", "replacement"), [
    (["--limit", "3"], "3 images of {data} at 20x14, split seed 0"),
    (["--size", "10", "6"], "6 images of {data} at 10x6, split seed 0"),
    (["--seed", "4"], "6 images of {data} at 20x14, split seed 4"),
], ids=["limit", "size", "seed"])
def test_a_different_cache_never_silently_replaces_the_one_at_out(ccp_synthetic, tmp_path, capsys, flags,
                                                                  replacement):
    cache_dir = preprocess(ccp_synthetic, tmp_path / "cache", size=SIZE, workers=1)
    before = {path.name: path.read_bytes() for path in cache_dir.iterdir()}
    capsys.readouterr()
    argv = ["--data", str(ccp_synthetic), "--out", str(cache_dir), "--size", *map(str, SIZE), "--workers", "1"]
    assert run_cli(main, argv + flags) == 2
    stderr = capsys.readouterr().err
    assert stderr == (f"error: --out {cache_dir} holds a cache of 6 images of {ccp_synthetic} at 20x14, split seed "
                      f"0; this run would replace it with {replacement.format(data=ccp_synthetic)}: choose another "
                      "--out, or add --force to replace it\n")
    assert {path.name: path.read_bytes() for path in cache_dir.iterdir()} == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cache", "ccp"]


def test_the_same_cache_is_rebuilt_without_a_word(ccp_synthetic, tmp_path, capsys):
    argv = ["--data", str(ccp_synthetic), "--out", str(tmp_path / "cache"), "--size", *map(str, SIZE),
            "--limit", "4", "--seed", "2", "--workers", "1"]
    assert run_cli(main, argv) == 0
    (tmp_path / "cache" / "labels.npy").write_bytes(b"damaged")
    assert run_cli(main, argv) == 0
    assert capsys.readouterr().err == ""
    assert read_cache(tmp_path / "cache")[1].shape == (4, *SIZE)


def test_the_command_a_damaged_cache_suggests_rebuilds_that_same_cache(ccp_synthetic, tmp_path, capsys):
    argv = ["--data", str(ccp_synthetic), "--out", str(tmp_path / "cache"), "--size", "12", "8", "--limit", "4",
            "--seed", "2", "--workers", "1"]
    assert run_cli(main, argv) == 0
    before = read_cache(tmp_path / "cache")[2]
    (tmp_path / "cache" / "native_labels.npz").unlink()
    with pytest.raises(ClothVisionError) as damaged:
        load_cache(tmp_path / "cache")
    suggested = re.search(r"rerun `python preprocess.py (.*)`", str(damaged.value)).group(1)
    assert run_cli(main, [*shlex.split(suggested), "--workers", "1"]) == 0, capsys.readouterr().err
    assert load_cache(tmp_path / "cache").meta == before


def test_force_replaces_a_different_cache(ccp_synthetic, tmp_path):
    cache_dir = preprocess(ccp_synthetic, tmp_path / "cache", size=SIZE, workers=1)
    preprocess(ccp_synthetic, cache_dir, size=(10, 6), workers=1, limit=3, force=True)
    images, _, meta = read_cache(cache_dir)
    assert images.shape == (3, 3, 10, 6) and meta["image_size"] == [10, 6]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cache", "ccp"]


@pytest.mark.parametrize(("mode", "suffix"), [("L", ".png"), ("RGBA", ".png"), ("CMYK", ".jpg"),
                                              ("P", ".png"), ("I;16", ".png")])
def test_photos_of_any_mode_become_rgb(ccp_synthetic, tmp_path, mode, suffix):
    rgb = np.asarray(Image.open(ccp_synthetic / "photos" / "0001.jpg"))
    (ccp_synthetic / "photos" / "0001.jpg").unlink()
    if mode == "I;16":
        photo = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
        expected = Image.fromarray(rgb[..., 0]).convert("RGB")
    else:
        photo = Image.fromarray(rgb).convert(mode)
        expected = photo.convert("RGB")
    photo.save(ccp_synthetic / "photos" / f"0001{suffix}")
    if suffix == ".jpg":
        expected = Image.open(ccp_synthetic / "photos" / f"0001{suffix}").convert("RGB")
    images, _, _ = read_cache(preprocess(ccp_synthetic, tmp_path / "cache", size=SIZE, workers=1))
    resized = np.asarray(expected.resize(SIZE[::-1], Image.Resampling.BILINEAR)).transpose(2, 0, 1)
    np.testing.assert_allclose(images[0], resized, atol=1)
    if mode in ("L", "I;16"):
        np.testing.assert_array_equal(images[0][0], images[0][2])


def test_real_cache_of_40_images_equals_the_nearest_resized_mat_files(real_ccp_dir, tmp_path):
    size = (124, 76)
    cache_dir = preprocess(real_ccp_dir, tmp_path / "cache", size=size, limit=40, workers=2)
    images, labels, meta = read_cache(cache_dir)
    assert meta["ids"] == [f"{index:04d}" for index in range(1, 41)]
    assert meta["class_names"][0] == "null" and meta["class_names"][58] == "wedges"
    assert [len(meta["split"][name]) for name in ("train", "val", "test")] == [28, 6, 6]
    for row, image_id in enumerate(meta["ids"]):
        groundtruth = scipy.io.loadmat(real_ccp_dir / "annotations" / "pixel-level" / f"{image_id}.mat")
        np.testing.assert_array_equal(labels[row], nearest_resized(groundtruth["groundtruth"], size),
                                      err_msg=image_id)
    np.testing.assert_array_equal(images[7], bilinear_resized(real_ccp_dir / "photos" / "0008.jpg", size))
    assert_native_labels_are_the_annotations(load_cache(cache_dir), real_ccp_dir / "annotations" / "pixel-level")
    background_share = meta["train_class_pixel_counts"][0] / sum(meta["train_class_pixel_counts"])
    assert 0.6 < background_share < 0.9


def test_real_kaggle_sample_gives_the_same_cache_as_the_original_layout(real_ccp_dir, kaggle_sample_dir,
                                                                       tmp_path):
    size = (62, 38)
    original_dir = preprocess(real_ccp_dir, tmp_path / "original", size=size, limit=24, workers=2)
    kaggle_dir = preprocess(kaggle_sample_dir, tmp_path / "kaggle", size=size, workers=2)
    original, kaggle = read_cache(original_dir), read_cache(kaggle_dir)
    for split in ("val", "test"):
        for kaggle_label, original_label in zip(load_cache(kaggle_dir).native_labels(split),
                                                load_cache(original_dir).native_labels(split), strict=True):
            np.testing.assert_array_equal(kaggle_label, original_label)
    assert kaggle[2]["ids"] == original[2]["ids"] and kaggle[2]["source_layout"] == "kaggle"
    np.testing.assert_array_equal(kaggle[1], original[1])
    np.testing.assert_array_equal(kaggle[0], original[0])
    assert kaggle[2]["class_names"][1:] == original[2]["class_names"][1:]
    assert kaggle[2]["train_class_pixel_counts"] == original[2]["train_class_pixel_counts"]


def test_folder_with_both_layouts_uses_the_original_one(tmp_path):
    root = write_ccp_layout(tmp_path / "both")
    write_kaggle_layout(root, count=3)
    _, labels, meta = read_cache(preprocess(root, tmp_path / "cache", size=SIZE, workers=1))
    assert meta["source_layout"] == "ccp" and len(labels) == 6
