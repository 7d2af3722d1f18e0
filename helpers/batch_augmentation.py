"""The batch transforms of training, on the batch's device in whole-batch ops: the 'full' augmentation (random
zoom, crop or pad, flip and colour jitter; DeviceBatchLoader draws and applies it) and the half-size batches of
progressive resizing (trainers.training_epoch)."""

import numpy as np
import torch
import torch.nn.functional as F

# Label of pixels that carry no class (padding after zooming out); the loss and the metrics skip them.
IGNORE_INDEX = 255
# full: each image is zoomed by a factor drawn uniformly from [1/Z, Z] (below 1 it shrinks and is padded,
# above 1 it is cropped), Z being --zoom-range (this default: 0.5-2x), and its brightness, contrast and
# saturation by factors in 1 ± COLOUR_JITTER.
DEFAULT_ZOOM_RANGE = 2.0
COLOUR_JITTER = 0.25

# Columns of the augmentation draws: zoom factor, horizontal flip (1 or -1), where the zoomed image sits
# (x, y, each in [-1, 1]), brightness, contrast and saturation factors.
ZOOM, FLIP, OFFSET_X, OFFSET_Y, BRIGHTNESS, CONTRAST, SATURATION = range(7)
# ITU-R BT.601 luma weights: the grey a saturation or contrast change pulls towards.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def draw_augmentation(random: np.random.Generator, count: int,
                      zoom_range: float = DEFAULT_ZOOM_RANGE) -> torch.Tensor:
    """count×7 float32 draws (columns ZOOM ... SATURATION) for the 'full' augmentation of count images, zoom
    factors in [1/zoom_range, zoom_range]."""
    draws = np.empty((count, 7), dtype=np.float32)
    draws[:, ZOOM] = random.uniform(1.0 / zoom_range, zoom_range, count)
    draws[:, FLIP] = np.where(random.random(count) < 0.5, -1.0, 1.0)
    draws[:, [OFFSET_X, OFFSET_Y]] = random.uniform(-1.0, 1.0, (count, 2))
    draws[:, [BRIGHTNESS, CONTRAST, SATURATION]] = random.uniform(1 - COLOUR_JITTER, 1 + COLOUR_JITTER, (count, 3))
    return torch.from_numpy(draws)


def augment_batch(images: torch.Tensor, labels: torch.Tensor, draws: torch.Tensor, scale: torch.Tensor,
                  shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour-jitter, zoom, place and flip a uint8 batch (N×3×H×W, N×H×W) on its device, in whole-batch ops.

    Returns normalised float images and int64 labels of the same size. One affine sampling grid per image
    does zoom, crop or pad and flip at once: images are sampled bilinearly, labels with nearest neighbour
    (no class is invented at a boundary). Padding is the mean colour (0 after normalisation) in the image
    and IGNORE_INDEX in the label.
    """
    pixels = images.float()
    luma = torch.tensor(LUMA_WEIGHTS, device=images.device).view(1, 3, 1, 1)

    def factor(column: int) -> torch.Tensor:
        return draws[:, column].view(-1, 1, 1, 1)

    pixels = pixels * factor(BRIGHTNESS)
    mean_grey = (pixels * luma).sum(dim=1, keepdim=True).mean(dim=(2, 3), keepdim=True)
    pixels = torch.lerp(mean_grey, pixels, factor(CONTRAST))
    grey = (pixels * luma).sum(dim=1, keepdim=True)
    pixels = torch.lerp(grey, pixels, factor(SATURATION)).clamp_(0, 255)
    normalised = torch.addcmul(shift, pixels, scale)
    # Output pixel (x, y) samples the input at (x / zoom + offset, y / zoom); the offset keeps a zoomed-in
    # crop inside the image and a zoomed-out image inside the frame.
    inverse_zoom = 1.0 / draws[:, ZOOM]
    slack = (inverse_zoom - 1.0).abs()
    theta = torch.zeros(len(draws), 2, 3, device=images.device)
    theta[:, 0, 0] = inverse_zoom * draws[:, FLIP]
    theta[:, 1, 1] = inverse_zoom
    theta[:, 0, 2] = draws[:, OFFSET_X] * slack
    theta[:, 1, 2] = draws[:, OFFSET_Y] * slack
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    augmented = F.grid_sample(normalised, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # Labels shifted up by one, so that the zero padding stands out from class 0 (background).
    shifted = (labels.float() + 1).unsqueeze(1)
    sampled = F.grid_sample(shifted, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    sampled = sampled.squeeze(1).long()
    return augmented, torch.where(sampled == 0, IGNORE_INDEX, sampled - 1)


def half_size_batch(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A normalised batch (N×3×H×W float, N×H×W int64) at half its height and width, on its device: the labels
    by nearest neighbour (every second pixel, as torch's 'nearest' picks), so no class is invented and the
    ignore label stays where it was, and the images bilinearly with antialiasing, as preprocess.py resizes."""
    half_labels = labels[:, ::2, ::2]
    half_images = F.interpolate(images, size=half_labels.shape[-2:], mode="bilinear", align_corners=False,
                                antialias=True)
    return half_images, half_labels
