"""img_test.py: predictions at each photo's own size from a checkpoint alone, labels, figures, folders."""

import json
import re

import matplotlib
import numpy as np
import pytest
import scipy.io
import torch
import torch.nn.functional as F
from checkpoint_factory import write_tiny_checkpoint
from PIL import Image
from synthetic_ccp import CLASS_NAMES, PALETTE

import img_test
from evaluation.upsampling import upsampled_argmax
from helpers import figures
from helpers.errors import ClothVisionError, run_cli
from helpers.image_io import to_rgb
from label_decoder import LabelDecoder

CONSTANT_CLASS = 7


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained tiny U-net: its predicted classes are arbitrary but real outputs of a real model."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp("checkpoints") / "unet.pt")


@pytest.fixture(scope="module")
def constant_checkpoint(tmp_path_factory):
    """A tiny U-net that predicts CONSTANT_CLASS on every pixel of every image."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp("checkpoints") / "constant.pt",
                                 constant_class=CONSTANT_CLASS)


def printed_classes(output: str, heading: str) -> list[str]:
    match = re.search(rf"^{heading} classes: (\[.*\])$", output, re.MULTILINE)
    assert match, f"no '{heading} classes' line in {output!r}"
    return eval(match.group(1))  # the line is a printed list of names, as the original project printed it


def assert_consistent(prediction: np.ndarray, predicted_classes: list[str], height: int, width: int) -> None:
    assert prediction.shape == (height, width)
    assert prediction.dtype == np.uint8
    assert predicted_classes == [CLASS_NAMES[index] for index in np.unique(prediction)]


def test_real_photo_is_predicted_at_its_own_size_with_its_annotation_as_label(real_ccp_dir, checkpoint,
                                                                            tmp_path, capsys):
    photo = real_ccp_dir / "photos" / "0001.jpg"
    prediction, predicted_classes = img_test.test_with_image(photo, checkpoint, show=False,
                                                             save_to=tmp_path / "figure.png")
    with Image.open(photo) as original:
        assert_consistent(prediction, predicted_classes, original.height, original.width)
    assert set(predicted_classes) <= set(CLASS_NAMES)
    output = capsys.readouterr().out
    groundtruth = scipy.io.loadmat(real_ccp_dir / "annotations" / "pixel-level" / "0001.mat")["groundtruth"]
    assert printed_classes(output, "Real") == [CLASS_NAMES[index] for index in np.unique(groundtruth)]
    assert printed_classes(output, "Predicted") == predicted_classes
    with Image.open(tmp_path / "figure.png") as figure:
        # Three portrait panels side by side: wider than tall.
        assert figure.format == "PNG" and figure.width > figure.height > 300
    assert [path.name for path in tmp_path.iterdir()] == ["figure.png"]  # no temporary file left


def test_constant_model_predicts_its_class_everywhere_and_prints_it(ccp_synthetic, constant_checkpoint,
                                                                    capsys):
    prediction, predicted_classes = img_test.test_with_image(ccp_synthetic / "photos" / "0003.jpg",
                                                             constant_checkpoint, show=False)
    assert np.all(prediction == CONSTANT_CLASS)
    assert predicted_classes == [CLASS_NAMES[CONSTANT_CLASS]]
    assert printed_classes(capsys.readouterr().out, "Predicted") == [CLASS_NAMES[CONSTANT_CLASS]]


def test_dataset_labels_are_found_beside_photos_in_both_layouts(ccp_synthetic, kaggle_synthetic, tmp_path):
    assert img_test.find_dataset_label(ccp_synthetic / "photos" / "0002.jpg") == \
        ccp_synthetic / "annotations" / "pixel-level" / "0002.mat"
    assert img_test.find_dataset_label(kaggle_synthetic / "images" / "0002.jpg") == \
        kaggle_synthetic / "labels" / "pixel_level_labels_mat" / "0002.mat"
    (kaggle_synthetic / "labels" / "pixel_level_labels_mat" / "0002.mat").unlink()
    assert img_test.find_dataset_label(kaggle_synthetic / "images" / "0002.jpg") == \
        kaggle_synthetic / "labels" / "pixel_level_labels_colored" / "0002.png"
    assert img_test.find_dataset_label(ccp_synthetic / "photos" / "0099.jpg") is None
    assert img_test.find_dataset_label(tmp_path / "holiday.jpg") is None


def test_colour_png_label_prints_the_same_real_classes_as_the_mat(kaggle_synthetic, checkpoint, capsys):
    photo = kaggle_synthetic / "images" / "0004.jpg"
    groundtruth = scipy.io.loadmat(kaggle_synthetic / "labels" / "pixel_level_labels_mat" / "0004.mat")
    expected = [CLASS_NAMES[index] for index in np.unique(groundtruth["groundtruth"])]
    img_test.test_with_image(photo, checkpoint, show=False)
    assert printed_classes(capsys.readouterr().out, "Real") == expected
    colored = kaggle_synthetic / "labels" / "pixel_level_labels_colored" / "0004.png"
    img_test.test_with_image(photo, checkpoint, label_file=colored, show=False)
    assert printed_classes(capsys.readouterr().out, "Real") == expected


def test_photo_outside_a_dataset_prints_no_real_classes(tmp_path, checkpoint, capsys):
    Image.new("RGB", (30, 20), (200, 30, 30)).save(tmp_path / "red.png")
    img_test.test_with_image(tmp_path / "red.png", checkpoint, show=False)
    output = capsys.readouterr().out
    assert "Real classes" not in output and "Predicted classes: [" in output


def test_label_of_another_size_is_refused(ccp_synthetic, checkpoint, tmp_path):
    scipy.io.savemat(tmp_path / "small.mat", {"groundtruth": np.zeros((5, 5), dtype=np.uint8)})
    with pytest.raises(ClothVisionError, match=r"label .*small.mat is 5x5 pixels but image .* is 28x40"):
        img_test.test_with_image(ccp_synthetic / "photos" / "0001.jpg", checkpoint,
                                 label_file=tmp_path / "small.mat", show=False)


def odd_mode_image(mode: str) -> Image.Image:
    """A 9x7 picture in the given PIL mode, built from the same RGB gradient."""
    red, green = np.meshgrid(np.linspace(0, 255, 9), np.linspace(0, 255, 7))
    rgb = Image.fromarray(np.stack([red, green, np.full_like(red, 128)], axis=-1).astype(np.uint8))
    if mode == "I;16":
        return Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
    if mode == "P+transparency":
        image = rgb.convert("P")
        image.info["transparency"] = 0
        return image
    return rgb.convert(mode)


@pytest.mark.parametrize(("mode", "file_name", "stored_mode"), [
    ("RGB", "photo.jpg", "RGB"), ("L", "grey.png", "L"), ("RGBA", "cutout.png", "RGBA"),
    ("LA", "grey_alpha.png", "LA"), ("CMYK", "print.jpg", "CMYK"), ("P", "palette.gif", "P"),
    ("P+transparency", "palette.png", "P"), ("I;16", "deep.png", "I;16"), ("I", "deep.tiff", "I"),
    ("F", "float.tiff", "F"), ("1", "bilevel.bmp", "1"), ("RGB", "photo.webp", "RGB"),
])
def test_every_image_mode_is_predicted_at_its_own_size(mode, file_name, stored_mode, tmp_path, checkpoint):
    odd_mode_image(mode).save(tmp_path / file_name)
    with Image.open(tmp_path / file_name) as saved:
        assert saved.mode == stored_mode  # the file really holds the odd mode
    prediction, predicted_classes = img_test.test_with_image(tmp_path / file_name, checkpoint, show=False)
    assert_consistent(prediction, predicted_classes, 7, 9)


@pytest.mark.parametrize(("width", "height"), [(1, 1), (3, 2), (1, 300), (257, 1)])
def test_tiny_and_thin_images_are_predicted_at_their_own_size(width, height, tmp_path, checkpoint):
    Image.new("RGB", (width, height), (10, 120, 200)).save(tmp_path / "small.png")
    prediction, predicted_classes = img_test.test_with_image(tmp_path / "small.png", checkpoint, show=False,
                                                             save_to=tmp_path / "figure.png")
    assert_consistent(prediction, predicted_classes, height, width)
    assert (tmp_path / "figure.png").stat().st_size > 0


def test_large_photo_is_predicted_at_full_size(tmp_path, constant_checkpoint):
    gradient = np.linspace(0, 255, 3000, dtype=np.float32)[None, :, None] * np.ones((2000, 1, 3), np.float32)
    Image.fromarray(gradient.astype(np.uint8)).save(tmp_path / "large.jpg", quality=80)
    prediction, predicted_classes = img_test.test_with_image(tmp_path / "large.jpg", constant_checkpoint,
                                                             show=False)
    assert prediction.shape == (2000, 3000) and np.all(prediction == CONSTANT_CLASS)
    assert predicted_classes == [CLASS_NAMES[CONSTANT_CLASS]]


def test_exif_orientation_is_applied(tmp_path, checkpoint):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view": a portrait shot stored as landscape pixels
    Image.new("RGB", (40, 10), (90, 90, 90)).save(tmp_path / "portrait.jpg", exif=exif)
    prediction, _ = img_test.test_with_image(tmp_path / "portrait.jpg", checkpoint, show=False)
    assert prediction.shape == (40, 10)


def test_deep_and_transparent_modes_convert_to_the_expected_rgb():
    deep = Image.fromarray(np.array([[0, 257 * 100, 65535]], dtype=np.uint16))
    assert np.asarray(to_rgb(deep))[0].tolist() == [[0, 0, 0], [100, 100, 100], [255, 255, 255]]
    floats = Image.fromarray(np.array([[-1.0, 0.0, 1.0]], dtype=np.float32))
    assert np.asarray(to_rgb(floats))[0, :, 0].tolist() == [0, 128, 255]
    transparent = Image.new("RGBA", (2, 1), (200, 0, 0, 0))
    transparent.putpixel((1, 0), (200, 0, 0, 255))
    assert np.asarray(to_rgb(transparent))[0].tolist() == [[255, 255, 255], [200, 0, 0]]
    assert np.asarray(to_rgb(Image.new("CMYK", (1, 1), (0, 0, 0, 0))))[0].tolist() == [[255, 255, 255]]


@pytest.mark.parametrize(("source_size", "output_size", "max_band_values"), [
    ((12, 8), (37, 29), 59 * 29),     # upsampling, one row per band
    ((12, 8), (37, 29), 10**9),       # upsampling, one band
    ((12, 8), (5, 3), 59 * 3 * 2),    # downsampling
    ((12, 8), (12, 8), 10**9),        # same size
    ((3, 3), (200, 170), 10**6),      # large factor: most output pixels lie between agreeing scores
])
def test_upsampled_argmax_equals_argmax_of_bilinear_interpolation(source_size, output_size, max_band_values):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(59, *source_size, generator=generator)
    resized = F.interpolate(logits[None], size=output_size, mode="bilinear", align_corners=False)[0]
    prediction = upsampled_argmax(logits, *output_size, max_band_values=max_band_values)
    assert prediction.dtype == np.uint8
    np.testing.assert_array_equal(prediction, resized.argmax(0).numpy())


def test_folder_prediction_writes_three_pngs_per_image_and_reports_skipped_files(tmp_path, checkpoint,
                                                                                  capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    odd_mode_image("RGB").save(folder / "look.jpg")
    odd_mode_image("L").save(folder / "look.png")  # same stem: outputs must not collide
    Image.new("RGB", (12, 16), (30, 60, 90)).save(folder / "street.png")
    (folder / "notes.txt").write_text("not a picture")
    (folder / "broken.jpg").write_bytes((folder / "look.jpg").read_bytes()[:200])
    (folder / ".DS_Store").write_bytes(b"\0\1")
    (folder / "older").mkdir()
    out_dir = tmp_path / "predictions"
    assert run_cli(img_test.main, [str(folder), "--out-dir", str(out_dir),
                                            "--checkpoint", str(checkpoint)]) == 0
    stems = ["look.jpg", "look.png", "street"]
    assert sorted(path.name for path in out_dir.iterdir()) == sorted(
        [f"{stem}_{kind}.png" for stem in stems for kind in ("mask", "overlay", "classes")] + ["descriptions.jsonl"])
    descriptions = (out_dir / "descriptions.jsonl").read_text().splitlines()
    assert [json.loads(line)["image"] for line in descriptions] == ["look.jpg", "look.png", "street.png"]
    output = capsys.readouterr().out
    assert "for 3 images to" in output
    assert "Skipped 2 files that are not readable images: broken.jpg (corrupt or truncated), " \
           "notes.txt (not an image)" in output
    expected, _ = img_test.test_with_image(folder / "street.png", checkpoint, show=False)
    with Image.open(out_dir / "street_classes.png") as classes, \
            Image.open(out_dir / "street_mask.png") as mask:
        assert classes.mode == "L" and mask.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(classes), expected)
        np.testing.assert_array_equal(np.asarray(mask), np.array(PALETTE, dtype=np.uint8)[expected])


def test_overlay_blends_class_colours_and_leaves_the_background_as_photographed(tmp_path):
    photo = Image.new("RGB", (2, 1), (100, 100, 100))
    prediction = np.array([[0, 3]], dtype=np.uint8)
    decoder = LabelDecoder(CLASS_NAMES, PALETTE)
    img_test.write_prediction_pngs(tmp_path, "photo", photo, prediction, decoder)
    with Image.open(tmp_path / "photo_overlay.png") as overlay:
        pixels = np.asarray(overlay).astype(int)
    assert pixels[0, 0].tolist() == [100, 100, 100]
    np.testing.assert_allclose(pixels[0, 1], (np.array(PALETTE[3]) + 100) / 2, atol=1)


def test_single_image_with_out_dir_writes_its_pngs(tmp_path, constant_checkpoint, capsys):
    Image.new("RGB", (6, 4), (1, 2, 3)).save(tmp_path / "one.png")
    assert run_cli(img_test.main, [str(tmp_path / "one.png"), "--out-dir", str(tmp_path / "out"),
                                            "--checkpoint", str(constant_checkpoint)]) == 0
    with Image.open(tmp_path / "out" / "one_classes.png") as classes:
        assert np.all(np.asarray(classes) == CONSTANT_CLASS) and classes.size == (6, 4)
    assert "for 1 images" in capsys.readouterr().out


def test_test_split_image_is_looked_up_in_the_data_folder(ccp_synthetic, checkpoint, tmp_path, capsys):
    assert img_test.test_split_image(checkpoint, 0, ccp_synthetic) == ccp_synthetic / "photos" / "0002.jpg"
    assert img_test.test_split_image(checkpoint, 1, ccp_synthetic) == ccp_synthetic / "photos" / "0006.jpg"
    assert run_cli(img_test.main, ["--test-split-image", "1", "--data-dir", str(ccp_synthetic),
                                            "--checkpoint", str(checkpoint),
                                            "--save", str(tmp_path / "result.png")]) == 0
    output = capsys.readouterr().out
    groundtruth = scipy.io.loadmat(ccp_synthetic / "annotations" / "pixel-level" / "0006.mat")["groundtruth"]
    assert printed_classes(output, "Real") == [CLASS_NAMES[index] for index in np.unique(groundtruth)]
    assert (tmp_path / "result.png").stat().st_size > 0


def test_figure_is_saved_in_the_format_of_its_extension(tmp_path, constant_checkpoint, ccp_synthetic):
    photo = ccp_synthetic / "photos" / "0001.jpg"
    img_test.test_with_image(photo, constant_checkpoint, show=False, save_to=tmp_path / "new" / "figure.svg")
    assert (tmp_path / "new" / "figure.svg").read_text().lstrip().startswith("<?xml")
    with pytest.raises(ClothVisionError, match=r"cannot save a figure as .*figure.xyz: use one of .*\.png"):
        img_test.test_with_image(photo, constant_checkpoint, show=False, save_to=tmp_path / "figure.xyz")


@pytest.mark.parametrize(("backend", "platform", "display", "expected"), [
    ("agg", "linux", ":0", False),
    ("tkagg", "linux", None, False),
    ("tkagg", "linux", ":0", True),
    ("qtagg", "darwin", None, True),
    ("module://matplotlib_inline.backend_inline", "linux", None, True),
])
def test_display_is_detected_from_backend_platform_and_environment(backend, platform, display, expected,
                                                                   monkeypatch):
    monkeypatch.setattr(matplotlib, "get_backend", lambda: backend)
    monkeypatch.setattr(figures.sys, "platform", platform)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if display is None:
        monkeypatch.delenv("DISPLAY", raising=False)
    else:
        monkeypatch.setenv("DISPLAY", display)
    assert figures.display_available() is expected


def test_headless_default_neither_shows_nor_fails(ccp_synthetic, constant_checkpoint, monkeypatch):
    shown = []
    monkeypatch.setattr(img_test, "display_available", lambda: False)
    monkeypatch.setattr(img_test, "finish_figure", lambda *arguments: shown.append(arguments))
    prediction, _ = img_test.test_with_image(ccp_synthetic / "photos" / "0001.jpg", constant_checkpoint)
    assert prediction.shape == (40, 28) and shown == []


def test_bf16_prediction_follows_the_float32_logits(ccp_synthetic, checkpoint):
    from inference.predictor import SegmentationPredictor

    full = SegmentationPredictor(checkpoint, "cpu", precision="fp32")
    half = SegmentationPredictor(checkpoint, "cpu", precision="bf16")
    assert (full.backend.precision.name, half.backend.precision.name) == ("fp32", "bf16")
    assert half.backend.model.classifier.weight.is_contiguous(memory_format=torch.channels_last)
    batch = torch.randn(1, 3, *full.image_size, generator=torch.Generator().manual_seed(0))
    reference, approximate = full.backend.logits(batch), half.backend.logits(batch)
    assert approximate.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa: within a few per cent of the logits' range. (An untrained network's
    # near-ties make its argmax a poor judge of the arithmetic.)
    assert (approximate - reference).abs().max() < 0.05 * (reference.max() - reference.min())
    photo = Image.open(ccp_synthetic / "photos" / "0001.jpg").convert("RGB")
    assert half.predict(photo).shape == (photo.height, photo.width)


def test_test_split_image_loads_the_checkpoint_once(ccp_synthetic, checkpoint, tmp_path, monkeypatch):
    import helpers.checkpoint
    import inference.backends

    loads = []

    def counting_load(path, *arguments, **keywords):
        loads.append(path)
        return helpers.checkpoint.load_checkpoint(path, *arguments, **keywords)

    monkeypatch.setattr(inference.backends, "load_checkpoint", counting_load)
    assert run_cli(img_test.main, ["--test-split-image", "0", "--data-dir", str(ccp_synthetic), "--checkpoint",
                                   str(checkpoint), "--save", str(tmp_path / "figure.png")]) == 0
    assert len(loads) == 1 and (tmp_path / "figure.png").is_file()
