"""Flip test-time augmentation: exactly the mean of the scores of a batch and of its mirror, mirrored back,
in the predictor's two back ends and in every img_test.py mode."""

import json

import numpy as np
import pytest
import torch
from checkpoint_factory import TINY_UNET_KWARGS, fitted_tiny_unet, write_model_checkpoint
from PIL import Image
from synthetic_ccp import write_ccp_layout

import export
import img_test
from evaluation.test_time_augmentation import augmented_logits
from helpers.errors import ClothVisionError, run_cli
from helpers.image_io import read_rgb_image
from inference.attire import PredictionSource, describe_photo
from inference.predictor import SegmentationPredictor, upsampled_argmax
from label_encoder import read_groundtruth_mat

pytestmark = pytest.mark.usefixtures("one_torch_thread")
IMAGE_SIZE = (32, 24)


def width_weighted(images: torch.Tensor) -> torch.Tensor:
    """An asymmetric 'network': each column scaled by its own weight."""
    return images * torch.tensor([1.0, 10.0, 100.0])


def test_no_augmentation_is_one_forward_of_the_batch_itself():
    images = torch.tensor([[[[1.0, 2.0, 3.0]]]])
    seen = []
    logits = augmented_logits(lambda batch: seen.append(batch) or width_weighted(batch), images, "none")
    assert len(seen) == 1 and seen[0] is images
    assert logits.tolist() == [[[[1.0, 20.0, 300.0]]]]


def test_flip_is_exactly_the_mean_of_the_batch_and_its_mirror_mirrored_back():
    images = torch.tensor([[[[1.0, 2.0, 3.0]]]])
    seen = []
    logits = augmented_logits(lambda batch: seen.append(batch) or width_weighted(batch), images, "flip")
    # forward(images) = [1, 20, 300]; forward(mirror) = [3, 20, 100], mirrored back [100, 20, 3].
    assert logits.tolist() == [[[[50.5, 20.0, 151.5]]]]
    assert [batch.tolist() for batch in seen] == [[[[[1.0, 2.0, 3.0]]]], [[[[3.0, 2.0, 1.0]]]]]


def test_mirror_symmetric_logits_are_left_exactly_as_they_are():
    torch.manual_seed(0)
    convolution = torch.nn.Conv2d(3, 5, kernel_size=3, padding=1)

    def symmetric(batch):
        return convolution(batch) + convolution(batch.flip(-1)).flip(-1)

    images = torch.randn(2, 3, 6, 5)
    with torch.no_grad():
        assert torch.equal(augmented_logits(symmetric, images, "flip"), symmetric(images))
        assert not torch.equal(augmented_logits(convolution, images, "flip"), convolution(images))


def test_an_unknown_augmentation_is_refused_before_any_forward():
    with pytest.raises(ClothVisionError, match="test-time augmentation 'rotate' is unknown: use one of none, flip"):
        augmented_logits(lambda batch: pytest.fail("no forward expected"), torch.zeros(1, 3, 2, 2), "rotate")


@pytest.fixture(scope="module")
def photos_and_checkpoints(tmp_path_factory):
    """Synthetic photos, a tiny U-net fitted to them (decisive scores, so that the two back ends agree to the
    pixel) as a .pt checkpoint, and a function that exports it to ONNX when the packages are there."""
    data = write_ccp_layout(tmp_path_factory.mktemp("data") / "ccp")
    photo_files = sorted((data / "photos").iterdir())
    labels = [read_groundtruth_mat(path, 59) for path in sorted((data / "annotations" / "pixel-level").iterdir())]
    model = fitted_tiny_unet([read_rgb_image(path) for path in photo_files], labels, IMAGE_SIZE)
    checkpoint = write_model_checkpoint(tmp_path_factory.mktemp("checkpoints") / "unet.pt", "unet", model,
                                        TINY_UNET_KWARGS, IMAGE_SIZE)
    return photo_files, checkpoint


@pytest.fixture(params=["pytorch", "onnx runtime"])
def checkpoint_file(request, photos_and_checkpoints):
    _, checkpoint = photos_and_checkpoints
    if request.param == "pytorch":
        return checkpoint
    for package in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(package)
    onnx_file = checkpoint.with_suffix(".onnx")
    return onnx_file if onnx_file.is_file() else export.export_checkpoint(checkpoint)


def recording(predictor: SegmentationPredictor, transform=None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Replace the predictor's back end call by one that records (batch, logits); transform changes the logits."""
    calls, logits_of_backend = [], predictor.backend.logits

    def recorded(batch):
        logits = logits_of_backend(batch) if transform is None else transform(logits_of_backend, batch)
        calls.append((batch.clone(), logits))
        return logits

    predictor.backend.logits = recorded
    return calls


def test_the_predictor_averages_each_photo_with_its_mirror_in_both_back_ends(photos_and_checkpoints,
                                                                              checkpoint_file):
    photo = read_rgb_image(photos_and_checkpoints[0][2])
    predictor = SegmentationPredictor(checkpoint_file, precision="fp32" if checkpoint_file.suffix == ".pt" else "auto",
                                      tta="flip")
    calls = recording(predictor)
    prediction = predictor.predict(photo)
    (batch, logits), (mirrored_batch, mirrored_logits) = calls
    assert torch.equal(mirrored_batch, batch.flip(-1))
    expected = upsampled_argmax(((logits + mirrored_logits.flip(-1)) / 2)[0], photo.height, photo.width)
    np.testing.assert_array_equal(prediction, expected)
    without = upsampled_argmax(logits[0], photo.height, photo.width)
    assert (prediction != without).any()  # the fitted model is not mirror-symmetric: the mean changes pixels


def test_mirror_symmetric_logits_predict_the_same_with_and_without_flip_in_both_back_ends(photos_and_checkpoints,
                                                                                          checkpoint_file):
    photo = read_rgb_image(photos_and_checkpoints[0][0])

    def symmetrised(logits, batch):
        return logits(batch) + logits(batch.flip(-1)).flip(-1)

    predictions = {}
    for tta in ("none", "flip"):
        predictor = SegmentationPredictor(checkpoint_file, tta=tta)
        recording(predictor, symmetrised)
        predictions[tta] = predictor.predict(photo)
    np.testing.assert_array_equal(predictions["flip"], predictions["none"])


def test_img_test_predicts_with_flip_in_the_figure_the_folder_and_describe(photos_and_checkpoints, tmp_path, capsys):
    photo_files, checkpoint = photos_and_checkpoints
    flipped = SegmentationPredictor(checkpoint, tta="flip")
    expected = {path.stem: flipped.predict(read_rgb_image(path)) for path in photo_files}
    unflipped = SegmentationPredictor(checkpoint)
    assert any((unflipped.predict(read_rgb_image(path)) != expected[path.stem]).any() for path in photo_files)

    prediction, _ = img_test.test_with_image(photo_files[2], checkpoint, show=False, tta="flip")
    np.testing.assert_array_equal(prediction, expected[photo_files[2].stem])
    folder = photo_files[0].parent
    assert run_cli(img_test.main, [str(folder), "--out-dir", str(tmp_path / "out"), "--checkpoint", str(checkpoint),
                                   "--tta", "flip"]) == 0
    for stem, class_map in expected.items():
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / f"{stem}_classes.png")), class_map)
    assert run_cli(img_test.main, [str(folder), "--describe", "--checkpoint", str(checkpoint), "--tta", "flip",
                                   "--json", str(tmp_path / "described.jsonl")]) == 0
    described = [json.loads(line)["garments"] for line in (tmp_path / "described.jsonl").read_text().splitlines()]
    garments = {tta: [describe_photo(path, PredictionSource(predictor)).description.record()["garments"]
                      for path in photo_files] for tta, predictor in (("flip", flipped), ("none", unflipped))}
    assert described == garments["flip"] != garments["none"]
    capsys.readouterr()


def test_an_unknown_tta_flag_is_refused_by_the_parser(photos_and_checkpoints, capsys):
    photo_files, checkpoint = photos_and_checkpoints
    with pytest.raises(SystemExit):
        img_test.main([str(photo_files[0]), "--checkpoint", str(checkpoint), "--tta", "rotate"])
    assert "invalid choice: 'rotate'" in capsys.readouterr().err
