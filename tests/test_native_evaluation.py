"""The test evaluation scores class maps at the annotations' own size: what a shrunk label loses (a belt one
pixel wide) the native metrics still see; a model that is right everywhere scores exactly 1."""

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from synthetic_ccp import CLASS_NAMES, write_ccp_layout
from torch import nn
from training_runs import single_torch_thread  # noqa: F401 (autouse fixture: tests run on one thread)

from dataset import DeviceBatchLoader, load_cache
from evaluation.garment_groups import garment_groups_for
from helpers.devices import resolve_precision
from preprocess import preprocess
from trainers.scoring import evaluate_at_native_size

STRIPE_CLASS = 7
# Four times a stripe's width apart: PIL's nearest-neighbour shrink by 4 keeps columns 2, 6, 10, ..., never 3.
STRIPE_COLUMN = 3


def write_labelled_photos(root, labels: list[np.ndarray]):
    """The original layout, with lossless photos whose red channel is 4 × the class index of each pixel."""
    write_ccp_layout(root, count=len(labels), size=labels[0].shape)
    for index, label in enumerate(labels, start=1):
        (root / "photos" / f"{index:04d}.jpg").unlink()
        photo = np.zeros((*label.shape, 3), dtype=np.uint8)
        photo[..., 0] = 4 * label
        Image.fromarray(photo).save(root / "photos" / f"{index:04d}.png")
        scipy.io.savemat(root / "annotations" / "pixel-level" / f"{index:04d}.mat", {"groundtruth": label})
    return root


class LabelFromRedChannel(nn.Module):
    """A 'model' that reads each pixel's class back from the photo (see write_labelled_photos)."""

    def __init__(self, mean: list[float], std: list[float], num_classes: int):
        super().__init__()
        self.mean, self.std, self.num_classes = mean[0], std[0], num_classes

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        red = (images[:, 0] * self.std + self.mean) * 255
        classes = torch.round(red / 4).long().clamp(0, self.num_classes - 1)
        return 10.0 * nn.functional.one_hot(classes, self.num_classes).permute(0, 3, 1, 2).float()


class Background(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(images), self.num_classes, *images.shape[-2:])
        logits[:, 0] = 1
        return logits


def native_report(cache, model):
    loader = DeviceBatchLoader(cache, "test", 2, "cpu")
    return evaluate_at_native_size(model, loader, cache.native_labels("test"), resolve_precision("fp32", "cpu"),
                                   garment_groups_for(cache.class_names))


def test_a_model_right_everywhere_scores_one_at_the_annotations_own_size(tmp_path):
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 12, size=(16, 12), dtype=np.uint8) for _ in range(12)]
    cache = load_cache(preprocess(write_labelled_photos(tmp_path / "raw", labels), tmp_path / "cache",
                                  size=(16, 12), workers=1))
    report = native_report(cache, LabelFromRedChannel(cache.meta["mean"], cache.meta["std"], len(CLASS_NAMES)))
    assert (report["pixel_accuracy"], report["miou"], report["garment_groups"]["miou"]) == (1.0, 1.0, 1.0)
    assert report["intervals"] == {"pixel_accuracy": [1.0, 1.0], "miou": [1.0, 1.0], "group_miou": [1.0, 1.0]}
    # Each image's matrix is its own: the diagonal of image k counts the classes of test label k.
    for position, label in enumerate(cache.native_labels("test")):
        assert np.array_equal(np.diagonal(report["image_confusion"][position]),
                              np.bincount(label.ravel(), minlength=len(CLASS_NAMES)))


def test_a_one_pixel_stripe_lost_at_the_training_size_is_scored_natively(tmp_path):
    labels = []
    for _ in range(12):
        label = np.zeros((64, 48), dtype=np.uint8)
        label[:, STRIPE_COLUMN] = STRIPE_CLASS
        labels.append(label)
    cache = load_cache(preprocess(write_labelled_photos(tmp_path / "raw", labels), tmp_path / "cache",
                                  size=(16, 12), workers=1))
    assert not (cache.labels == STRIPE_CLASS).any()  # the shrunk labels lost the stripe
    report = native_report(cache, Background(len(CLASS_NAMES)))
    stripe_name = CLASS_NAMES[STRIPE_CLASS]
    assert report["at_training_size"]["per_class_iou"][stripe_name] is None
    assert report["at_training_size"]["pixel_accuracy"] == 1.0
    assert report["per_class_iou"][stripe_name] == 0.0
    assert report["pixel_accuracy"] == pytest.approx(47 / 48)
    assert report["miou"] == pytest.approx((47 / 48 + 0) / 2)
    assert np.sum(report["confusion_matrix"]) == len(cache.split_indices("test")) * 64 * 48
