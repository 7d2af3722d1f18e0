"""The original project's data methods, re-implemented faithfully: the baselines bench.py measures against.

The original encoded every colour label PNG with a per-pixel Python dictionary lookup (numpy's
apply_along_axis over the RGB axis) into an H×W×59 one-hot array, and stored it as uint8 (59 bytes a pixel).
Its dataset class then decoded the JPEG and loaded that label for every item of every epoch, resized both,
scaled and normalised the image, and flipped half of the pairs, behind a plain single-process DataLoader.
"""

import random
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import InterpolationMode, transforms


def original_one_hot_lookup(palette: Sequence[Sequence[int]]) -> dict[bytes, np.ndarray]:
    """Colour bytes -> dense float64 one-hot row, the dictionary the original built from class_dict.csv."""
    one_hot_rows = np.eye(len(palette), dtype=np.float64)
    return {np.asarray(colour, dtype=np.uint8).tobytes(): one_hot_rows[index]
            for index, colour in enumerate(palette)}


def original_encode_label(rgb_label: np.ndarray, lookup: dict[bytes, np.ndarray]) -> torch.Tensor:
    """H×W×3 colour label -> H×W×C one-hot uint8 tensor, one Python call per pixel as the original did."""
    label = np.asarray(rgb_label, dtype=np.uint8)
    codified = np.apply_along_axis(lambda pixel: lookup[pixel.tobytes()], 2, label)
    return torch.tensor(codified, dtype=torch.uint8)


class DecodeEveryEpochDataset(Dataset):
    """Decode, resize and normalise a (photo, label) pair per item, every epoch, as the original dataset did.

    The photo is decoded with PIL where the original used torchvision.io.read_image (both call libjpeg-turbo;
    torchvision deprecates its decoders). The original loaded a 59-channel one-hot label file per item; this
    reads the label through read_label
    (H×W class indices from a .mat annotation or a colour PNG) instead, which moves 59 times fewer bytes,
    so a speed-up measured against it understates the one against the original.
    """

    def __init__(self, photo_paths: Sequence[Path], label_paths: Sequence[Path],
                 read_label: Callable[[Path], np.ndarray], image_size: tuple[int, int],
                 mean: Sequence[float], std: Sequence[float]):
        self.photo_paths = list(photo_paths)
        self.label_paths = list(label_paths)
        self.read_label = read_label
        self.transform_input = transforms.Compose([
            transforms.Resize(image_size, interpolation=InterpolationMode.BILINEAR, antialias=True),
            transforms.Lambda(lambda image: image / 255),
            transforms.Normalize(mean=list(mean), std=list(std)),
        ])
        self.transform_label = transforms.Resize(image_size, interpolation=InterpolationMode.NEAREST_EXACT)
        self.flip = transforms.RandomHorizontalFlip(p=1)

    def __len__(self) -> int:
        return len(self.photo_paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        with Image.open(self.photo_paths[index]) as photo:
            image = torch.from_numpy(np.array(photo.convert("RGB"))).permute(2, 0, 1)
        image = self.transform_input(image)
        index_map = self.read_label(self.label_paths[index])
        label = self.transform_label(torch.from_numpy(index_map)[None]).long()[0]
        if random.choice([True, False]):
            return self.flip(image), self.flip(label)
        return image, label
