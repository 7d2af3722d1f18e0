"""Parity of export.py's files: every architecture, exported from its checkpoint alone, computes PyTorch's
float32 logits in ONNX Runtime, and predicts the same classes on real photos."""

import numpy as np
import pytest
import torch
from checkpoint_factory import fitted_tiny_unet, tiny_unet, write_model_checkpoint

import export
from helpers.checkpoint import load_checkpoint
from helpers.image_io import read_rgb_image
from inference.onnx_format import export_to_onnx
from inference.predictor import SegmentationPredictor
from label_encoder import read_groundtruth_mat
from models import build_model_from_checkpoint, get_model

# Parity: ONNX Runtime's logits within 1e-3 of the logit range of PyTorch float32's, and the same
# class on at least 99.9 % of the pixels of real photos.
MAX_RELATIVE_DIFFERENCE = 1e-3
MIN_ARGMAX_AGREEMENT = 0.999
# DeepLabV3 models have no width to shrink: a small input keeps them fast.
SMALL_SIZE = (64, 48)
ARCHITECTURES = {"unet": {"base_width": 4}, "mobilenetv3": {}, "resnet50": {}, "resnet101": {}}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def random_images(batch: int, image_size: tuple[int, int], seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, *image_size, generator=torch.Generator().manual_seed(seed))


def pytorch_logits(checkpoint_path, images: torch.Tensor) -> torch.Tensor:
    """The float32 logits of the checkpoint's network in eval mode, as train.py's evaluation computes them."""
    with torch.inference_mode():
        return build_model_from_checkpoint(load_checkpoint(checkpoint_path))(images)


def assert_same_logits(reference: torch.Tensor, candidate: torch.Tensor) -> None:
    assert candidate.shape == reference.shape and candidate.dtype == torch.float32
    logit_range = (reference.max() - reference.min()).item()
    assert logit_range > 0
    assert (candidate - reference).abs().max().item() <= MAX_RELATIVE_DIFFERENCE * logit_range


@pytest.mark.parametrize("model_name", ARCHITECTURES)
def test_every_architecture_computes_pytorchs_logits_in_onnx_runtime(model_name, onnx_packages, tmp_path):
    torch.manual_seed(0)
    model = get_model(model_name, 59, **ARCHITECTURES[model_name])
    checkpoint = write_model_checkpoint(tmp_path / f"{model_name}.pt", model_name, model, ARCHITECTURES[model_name],
                                        SMALL_SIZE)
    onnx_file = export.export_checkpoint(checkpoint)
    assert onnx_file == tmp_path / f"{model_name}.onnx"
    predictor = SegmentationPredictor(onnx_file)
    # Three images: the exported batch dimension is free (the export traced two).
    images = random_images(3, SMALL_SIZE)
    assert_same_logits(pytorch_logits(checkpoint, images), predictor.backend.logits(images))
    assert predictor.model_name == model_name and predictor.image_size == SMALL_SIZE


# The study's size (halvings 120, 60, 30, 15), the default 496×304 (248, 124, 62, 31), and one whose odd
# halvings make the decoder pad its upsampled features (100 -> 50 -> 25 -> 12 upsampled back to 24 of 25).
@pytest.mark.parametrize("image_size", [(240, 144), (496, 304), (100, 76)])
def test_unet_exports_at_the_study_sizes_and_where_its_decoder_pads(image_size, onnx_packages, tmp_path):
    torch.manual_seed(0)
    model = get_model("unet", 59, base_width=8)
    checkpoint = write_model_checkpoint(tmp_path / "unet.pt", "unet", model, {"base_width": 8}, image_size)
    onnx_file = export.export_checkpoint(checkpoint, tmp_path / "deploy" / "study.onnx")
    images = random_images(1, image_size)
    assert_same_logits(pytorch_logits(checkpoint, images), SegmentationPredictor(onnx_file).backend.logits(images))


def test_a_network_left_in_training_mode_is_exported_as_in_eval_mode(onnx_packages):
    """A fresh network is in training mode, where BatchNorm uses each batch's statistics: comparing the export
    against it shows differences of half the logit range. The export is of the eval-mode network."""
    from inference.backends import OnnxRuntimeBackend

    model = tiny_unet().train()
    exported = OnnxRuntimeBackend(export_to_onnx(model, (48, 32)))
    assert model.training  # the caller's network is left as it was
    images = random_images(2, (48, 32))
    with torch.inference_mode():
        eval_mode_logits = model.eval()(images)
        training_mode_logits = model.train()(images)  # (which also moves BatchNorm's running statistics)
    assert_same_logits(eval_mode_logits, exported.logits(images))
    logit_range = (eval_mode_logits.max() - eval_mode_logits.min()).item()
    assert (training_mode_logits - eval_mode_logits).abs().max().item() > 0.1 * logit_range


def test_onnx_runtime_predicts_the_classes_of_pytorch_on_real_photos(real_ccp_dir, onnx_packages, tmp_path):
    ids = ("0001", "0002", "0003")
    photos = [read_rgb_image(real_ccp_dir / "photos" / f"{image_id}.jpg") for image_id in ids]
    labels = [read_groundtruth_mat(real_ccp_dir / "annotations" / "pixel-level" / f"{image_id}.mat", 59)
              for image_id in ids]
    # A network fitted to these photos: decisive scores over several classes, so agreeing on the argmax means
    # agreeing on the arithmetic, and disagreeing is visible (an untrained network's near-ties are neither).
    image_size = (64, 48)
    model = fitted_tiny_unet(photos, labels, image_size)
    checkpoint = write_model_checkpoint(tmp_path / "unet.pt", "unet", model, {"base_width": 4}, image_size)
    in_pytorch = SegmentationPredictor(checkpoint, "cpu", "fp32")
    in_onnx_runtime = SegmentationPredictor(export.export_checkpoint(checkpoint))
    # The control: an export whose pipeline forgets to subtract the mean, a classic deployment slip.
    without_mean = SegmentationPredictor(checkpoint, "cpu", "fp32")
    without_mean.shift = torch.zeros_like(without_mean.shift)
    for photo in photos:
        expected = in_pytorch.predict(photo)
        assert expected.shape == (photo.height, photo.width)
        assert (np.bincount(expected.ravel()) > 0.01 * expected.size).sum() >= 3  # several classes, not one
        assert (in_onnx_runtime.predict(photo) == expected).mean() >= MIN_ARGMAX_AGREEMENT
        assert (without_mean.predict(photo) == expected).mean() < MIN_ARGMAX_AGREEMENT


def test_the_stride2_unet_exports_with_its_upsampled_logits(onnx_packages, tmp_path):
    torch.manual_seed(0)
    model_kwargs = {"base_width": 4, "stem": "stride2"}
    checkpoint = write_model_checkpoint(tmp_path / "unet.pt", "unet", get_model("unet", 59, **model_kwargs),
                                        model_kwargs, (100, 76))
    predictor = SegmentationPredictor(export.export_checkpoint(checkpoint))
    images = random_images(2, (100, 76))
    logits = predictor.backend.logits(images)
    assert logits.shape == (2, 59, 100, 76)  # upsampled back from the stem's 50×38
    assert_same_logits(pytorch_logits(checkpoint, images), logits)
