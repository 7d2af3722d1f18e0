"""The original project's U-net, trained from scratch."""

import torch
import torch.nn.functional as F
from torch import nn

from helpers.errors import ClothVisionError

ENCODER_DEPTH = 4
# The original project's width: encoder blocks of 70, 140, 280 and 560 channels, a 1120-channel bottleneck.
DEFAULT_BASE_WIDTH = 70
# full: the original's, whose first block and last decoder block run at the input's size. stride2: a strided
# 3×3 convolution halves the input first and the logits are upsampled back (bilinearly, as DeepLabV3 does):
# each U-net level costs about the same FLOPs, and the full-size one, with the fewest channels, runs at the
# worst efficiency on a CPU.
STEM_CHOICES = ("full", "stride2")


class DoubleConv(nn.Sequential):
    """Two 3×3 convolutions, each followed by BatchNorm and ReLU (the convolutions need no bias)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UpBlock(nn.Module):
    """2×2 transposed convolution, concatenation with the encoder's skip, then a DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.upsample = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.convolutions = DoubleConv(2 * out_channels, out_channels)

    def forward(self, features: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        features = self.upsample(features)
        missing_height = skip.shape[-2] - features.shape[-2]
        missing_width = skip.shape[-1] - features.shape[-1]
        # Max-pooling floors odd sizes, so upsampling can come back one row or column short of the skip.
        if missing_height or missing_width:
            features = F.pad(features, [missing_width // 2, missing_width - missing_width // 2,
                                        missing_height // 2, missing_height - missing_height // 2])
        return self.convolutions(torch.cat([skip, features], dim=1))


class UNet(nn.Module):
    """Encoder of widths w, 2w, 4w, 8w, a 16w bottleneck, a mirrored decoder and a 1×1 classifier.

    Any input of at least 16×16 pixels works (32×32 with the stride-2 stem); sizes not divisible by 16 are
    handled by padding the upsampled features to the skip's size. Returns logits N×num_classes×H×W.
    """

    def __init__(self, num_classes: int, base_width: int = DEFAULT_BASE_WIDTH, stem: str = "full"):
        super().__init__()
        if stem not in STEM_CHOICES:
            raise ClothVisionError(f"unknown U-net stem '{stem}': choose one of {', '.join(STEM_CHOICES)}")
        widths = [base_width * 2**level for level in range(ENCODER_DEPTH + 1)]
        self.stem = None if stem == "full" else nn.Sequential(
            nn.Conv2d(3, base_width, kernel_size=3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(base_width),
            nn.ReLU(inplace=True),
        )
        first_block_inputs = 3 if self.stem is None else base_width
        self.encoder = nn.ModuleList(
            DoubleConv(widths[level - 1] if level else first_block_inputs, widths[level])
            for level in range(ENCODER_DEPTH)
        )
        self.pool = nn.MaxPool2d(kernel_size=2)
        self.bottleneck = DoubleConv(widths[-2], widths[-1])
        self.decoder = nn.ModuleList(
            UpBlock(widths[level + 1], widths[level]) for level in reversed(range(ENCODER_DEPTH))
        )
        self.classifier = nn.Conv2d(base_width, num_classes, kernel_size=1)

    @property
    def min_input_size(self) -> int:
        return 2 ** (ENCODER_DEPTH + (self.stem is not None))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if min(images.shape[-2:]) < self.min_input_size:
            height, width = images.shape[-2:]
            raise ClothVisionError(f"U-net input {height}×{width} is too small: its {ENCODER_DEPTH} poolings "
                                   f"need at least {self.min_input_size}×{self.min_input_size} pixels; "
                                   "preprocess with a larger --size H W")
        skips = []
        features = images if self.stem is None else self.stem(images)
        for block in self.encoder:
            features = block(features)
            skips.append(features)
            features = self.pool(features)
        features = self.bottleneck(features)
        for block, skip in zip(self.decoder, reversed(skips), strict=True):
            features = block(features, skip)
        logits = self.classifier(features)
        if self.stem is None:
            return logits
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)
