"""The 'full' batch augmentation: zoom, crop or pad, flip and colour jitter on the device, seeded."""

import numpy as np
import pytest
import torch
from test_dataset import write_cache

from dataset import DeviceBatchLoader, load_cache, normalisation_scale_and_shift
from helpers.batch_augmentation import (
    BRIGHTNESS,
    CONTRAST,
    FLIP,
    IGNORE_INDEX,
    OFFSET_X,
    OFFSET_Y,
    SATURATION,
    ZOOM,
    augment_batch,
    draw_augmentation,
    half_size_batch,
)

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
# Class k is painted red = COLOUR_STEP * k, so a pixel's colour says which class it shows.
COLOUR_STEP = 20


def striped_batch(count: int = 4, height: int = 48, width: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of blocks of classes 1-9 (8×8 pixels each, never class 0) whose red channel encodes the class."""
    rows, columns = np.meshgrid(np.arange(height) // 8, np.arange(width) // 8, indexing="ij")
    labels = np.stack([1 + (rows + columns + shift) % 9 for shift in range(count)]).astype(np.uint8)
    images = np.zeros((count, 3, height, width), dtype=np.uint8)
    images[:, 0] = labels * COLOUR_STEP
    images[:, 1] = 128
    images[:, 2] = 64
    return torch.from_numpy(images), torch.from_numpy(labels)


def draws_without_jitter(count: int, seed: int = 0) -> torch.Tensor:
    draws = draw_augmentation(np.random.default_rng(seed), count)
    draws[:, [BRIGHTNESS, CONTRAST, SATURATION]] = 1.0
    return draws


def denormalised_red(images: torch.Tensor) -> torch.Tensor:
    return (images[:, 0] * STD[0] + MEAN[0]) * 255


def scale_and_shift():
    return normalisation_scale_and_shift({"mean": MEAN, "std": STD})


def test_draws_stay_in_their_ranges():
    draws = draw_augmentation(np.random.default_rng(1), 1000)
    assert draws[:, ZOOM].min() >= 0.5 and draws[:, ZOOM].max() <= 2.0
    assert set(draws[:, FLIP].tolist()) == {-1.0, 1.0}
    assert draws[:, [OFFSET_X, OFFSET_Y]].abs().max() <= 1.0
    jitter = draws[:, [BRIGHTNESS, CONTRAST, SATURATION]]
    assert jitter.min() >= 0.75 and jitter.max() <= 1.25
    # Zooming in and out both happen often.
    assert 0.2 < (draws[:, ZOOM] < 1).float().mean() < 0.5


def test_the_zoom_range_bounds_the_zoom_and_a_range_of_one_keeps_every_pixel(tmp_path):
    mild = draw_augmentation(np.random.default_rng(1), 1000, zoom_range=1.25)
    assert mild[:, ZOOM].min() >= 0.8 and mild[:, ZOOM].max() <= 1.25
    assert mild[:, ZOOM].min() < 0.85 and mild[:, ZOOM].max() > 1.2
    # Without zoom nothing is cropped or padded: each label map is the cached one, mirrored or not.
    cache = load_cache(write_cache(tmp_path / "cache", size=(24, 16)))
    loader = DeviceBatchLoader(cache, "train", batch_size=4, device="cpu", shuffle=True, augment="full",
                               zoom_range=1.0)
    cached = torch.from_numpy(cache.labels[cache.split_indices("train")]).long()
    _, labels = next(iter(loader))
    positions = loader.positions()[:4]
    for label, position in zip(labels, positions, strict=True):
        original = cached[position]
        assert torch.equal(label, original) or torch.equal(label, original.flip(-1))


def test_labels_after_augmentation_are_classes_present_before_or_ignored():
    images, labels = striped_batch()
    draws = draw_augmentation(np.random.default_rng(3), len(images))
    draws[0, ZOOM] = 0.5  # one image surely zoomed out, so padding is there
    _, augmented = augment_batch(images, labels, draws, *scale_and_shift())
    for before, after in zip(labels, augmented, strict=True):
        assert set(after.unique().tolist()) <= set(before.unique().tolist()) | {IGNORE_INDEX}
    assert (augmented[0] == IGNORE_INDEX).float().mean() == pytest.approx(0.75, abs=0.05)
    assert augmented.dtype == torch.int64 and augmented.shape == labels.shape


def test_image_and_label_stay_aligned():
    images, labels = striped_batch(count=8)
    augmented_images, augmented_labels = augment_batch(images, labels, draws_without_jitter(8, seed=5),
                                                       *scale_and_shift())
    labelled = augmented_labels != IGNORE_INDEX
    colour_class = torch.round(denormalised_red(augmented_images) / COLOUR_STEP).long()
    # Bilinear images and nearest-neighbour labels may disagree only along block edges.
    agreement = (colour_class == augmented_labels)[labelled].float().mean()
    assert agreement > 0.9
    # Padding is the mean colour, 0 after normalisation (the bilinear image blends into it over the border
    # pixel that nearest-neighbour labels already count as padding).
    padding = augmented_images.permute(1, 0, 2, 3)[:, ~labelled]
    assert padding.numel() and (padding.abs() < 1e-5).all(dim=0).float().mean() > 0.8


def test_neutral_draws_give_the_batch_back_and_a_flip_mirrors_it_exactly():
    images, labels = striped_batch()
    scale, shift = scale_and_shift()
    neutral = torch.tensor([[1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0]]).repeat(len(images), 1)
    same_images, same_labels = augment_batch(images, labels, neutral, scale, shift)
    torch.testing.assert_close(same_images, torch.addcmul(shift, images.float(), scale), atol=1e-4, rtol=0)
    assert torch.equal(same_labels, labels.long())
    mirrored = neutral.clone()
    mirrored[:, FLIP] = -1.0
    flipped_images, flipped_labels = augment_batch(images, labels, mirrored, scale, shift)
    assert torch.equal(flipped_labels, labels.long().flip(-1))
    torch.testing.assert_close(flipped_images, same_images.flip(-1), atol=1e-4, rtol=0)


def test_colour_jitter_changes_only_colours():
    images, labels = striped_batch()
    draws = torch.tensor([[1.0, 1.0, 0.0, 0.0, 1.2, 0.8, 1.1]]).repeat(len(images), 1)
    scale, shift = scale_and_shift()
    jittered, same_labels = augment_batch(images, labels, draws, scale, shift)
    assert torch.equal(same_labels, labels.long())
    assert (jittered - torch.addcmul(shift, images.float(), scale)).abs().mean() > 0.1


def test_the_same_seed_gives_the_same_batches_and_another_epoch_others(tmp_path):
    cache = load_cache(write_cache(tmp_path / "cache", size=(24, 16)))

    def first_batch(seed: int, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        loader = DeviceBatchLoader(cache, "train", batch_size=4, device="cpu", shuffle=True, augment="full",
                                   seed=seed)
        loader.set_epoch(epoch)
        return next(iter(loader))

    images, labels = first_batch(seed=7, epoch=2)
    again_images, again_labels = first_batch(seed=7, epoch=2)
    assert torch.equal(images, again_images) and torch.equal(labels, again_labels)
    other_images, _ = first_batch(seed=7, epoch=3)
    assert not torch.equal(images, other_images)
    assert images.shape == (4, 3, 24, 16) and labels.shape == (4, 24, 16)


def test_an_unknown_augmentation_is_refused(tmp_path):
    from helpers.errors import ClothVisionError

    cache = load_cache(write_cache(tmp_path / "cache"))
    with pytest.raises(ClothVisionError, match="unknown augmentation 'strong': use one of none, flip, full"):
        DeviceBatchLoader(cache, "train", batch_size=4, device="cpu", augment="strong")


def test_a_half_size_batch_keeps_classes_and_the_ignore_label_where_they_were():
    labels = torch.tensor([[[1, 1, 2, 2], [1, 1, 2, 2], [IGNORE_INDEX, 0, 3, 3], [0, 0, 3, 3]]])
    half_labels = half_size_batch(torch.zeros(2, 3, 4, 4), labels.expand(2, 4, 4))[1]
    assert half_labels.tolist() == [[[1, 2], [IGNORE_INDEX, 3]]] * 2
    # Stripes two pixels wide: plain bilinear halving would average pixel pairs (2i, 2i + 1) into 0 and 1;
    # the antialiasing filter (taps 1/8, 3/8, 3/8, 1/8 at a factor of 2) blurs them to 0.75 and 0.25 inside.
    stripes = torch.tensor([0.0, 0, 1, 1, 0, 0, 1, 1]).repeat(2, 3, 8, 1)
    half_images = half_size_batch(stripes, torch.zeros(2, 8, 8, dtype=torch.long))[0]
    assert half_images.shape == (2, 3, 4, 4)
    assert half_images[..., 1:3].flatten().tolist() == pytest.approx([0.75, 0.25] * 2 * 3 * 4)
