"""The cache preprocess.py writes: its format, as numpy arrays (load_cache), as a torch Dataset, and as a
batch loader that keeps a whole split on the training device and normalises and augments whole batches there."""

import json
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from helpers.batch_augmentation import DEFAULT_ZOOM_RANGE, augment_batch, draw_augmentation
from helpers.dataset_layouts import LAYOUTS
from helpers.errors import ClothVisionError, error_reason

# Version 2 added the labels at the annotations' own size.
CACHE_FORMAT_VERSION = 2
SPLIT_NAMES = ("train", "val", "test")
# A .npz archive (deflated) of uint8 H×W class maps, one entry per image id; meta.json's
# "native_label_shapes" gives each one's [H, W].
NATIVE_LABELS_FILE = "native_labels.npz"
REQUIRED_META_KEYS = ("ids", "image_size", "class_names", "palette", "mean", "std", "split", "native_label_shapes")
# none: the batches as cached; flip: random horizontal flips; full: random scale, crop or pad back to the
# training size, flip and colour jitter.
AUGMENT_CHOICES = ("none", "flip", "full")


@dataclass
class Cache:
    """The arrays (memory-mapped, read-only) and meta of one preprocess.py cache."""

    images: np.ndarray
    labels: np.ndarray
    meta: dict
    cache_dir: Path

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    def split_indices(self, split: str) -> np.ndarray:
        """Row indices of one split ('train', 'val' or 'test'), ascending."""
        if split not in SPLIT_NAMES:
            raise ClothVisionError(f"unknown split '{split}': use one of {', '.join(SPLIT_NAMES)}")
        return np.asarray(self.meta["split"][split], dtype=np.int64)

    def native_labels(self, split: str) -> list[np.ndarray]:
        """The labels of a split at the annotations' own size, uint8 H×W class maps in the order of
        split_indices(split). Every image has one, so a checkpoint's own split can be scored on a cache
        split another way. Read from disk at each call: only the evaluation needs them, training never
        loads them."""
        ids = [self.meta["ids"][row] for row in self.split_indices(split)]
        path = self.cache_dir / NATIVE_LABELS_FILE
        try:
            with np.load(path, allow_pickle=False) as archive:
                labels = [archive[image_id] for image_id in ids]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            raise ClothVisionError(
                f"cache {path} is incomplete or corrupt ({error_reason(error)}): {rerun_preprocess(self.cache_dir)}"
            ) from None
        for image_id, label in zip(ids, labels, strict=True):
            self._check_native_label(path, image_id, label)
        return labels

    def _check_native_label(self, path: Path, image_id: str, label: np.ndarray) -> None:
        expected = tuple(self.meta["native_label_shapes"].get(image_id, ()))
        largest = int(label.max()) if label.size else 0
        if label.dtype != np.uint8 or label.shape != expected or largest >= len(self.meta["class_names"]):
            raise ClothVisionError(
                f"cache {path} holds a {label.dtype} label of shape {label.shape} with class index {largest} "
                f"for image {image_id}, but its meta.json describes a uint8 label of shape {expected} with "
                f"{len(self.meta['class_names'])} classes: {rerun_preprocess(self.cache_dir)}"
            )


def rerun_preprocess(cache_dir: Path) -> str:
    """The fix for any problem with a cache: build the same cache again, from the folder, at the size, of the
    images and with the seed its meta records (preprocess.py refuses to put a different cache in its place)."""
    meta = read_meta(cache_dir) or {}
    flags = [f"--out {cache_dir}"]
    if "source_dir" in meta:
        flags.append(f"--data {meta['source_dir']}")
    if len(meta.get("image_size") or ()) == 2:
        flags.append("--size {} {}".format(*meta["image_size"]))
    if meta.get("ids"):
        flags.append(f"--limit {len(meta['ids'])}")  # --limit keeps the first ids: a full cache is all of them
    if meta.get("seed"):
        flags.append(f"--seed {meta['seed']}")
    return f"rerun `python preprocess.py {' '.join(flags)}`"


def no_cache_error(cache_dir: Path) -> ClothVisionError:
    """The error for a folder without a cache's meta.json; a dataset folder there (photos/ or images/) was
    meant for preprocess.py, which makes the cache."""
    if any((cache_dir / layout.photo_folder).is_dir() for layout in LAYOUTS):
        cache = cache_dir / "processed"
        return ClothVisionError(f"{cache_dir} is a dataset folder, not a cache: make its cache with `python "
                                f"preprocess.py --data {cache_dir} --out {cache}`, then pass --data {cache}")
    return ClothVisionError(f"no cache at {cache_dir}: run `python preprocess.py` first")


def read_meta(cache_dir: str | os.PathLike) -> dict | None:
    """A cache's meta.json as a dict, or None where there is none or it cannot be read (nothing is checked:
    for a glance at what a folder holds, not for loading it)."""
    try:
        meta = json.loads((Path(cache_dir) / "meta.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return meta if isinstance(meta, dict) else None


def load_cache(cache_dir: str | os.PathLike = "data/processed") -> Cache:
    """Open a cache without unpickling anything; any problem says to rerun preprocess.py."""
    cache_dir = Path(cache_dir)
    meta_path = cache_dir / "meta.json"
    if not meta_path.is_file():
        raise no_cache_error(cache_dir)
    rerun = rerun_preprocess(cache_dir)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ClothVisionError(f"cache {meta_path} cannot be read ({error_reason(error)}): {rerun}") from None
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if version != CACHE_FORMAT_VERSION:
        raise ClothVisionError(
            f"cache {cache_dir} has format version {version}, this code reads version "
            f"{CACHE_FORMAT_VERSION}: {rerun}"
        )
    try:
        images = np.load(cache_dir / "images.npy", mmap_mode="r")
        labels = np.load(cache_dir / "labels.npy", mmap_mode="r")
    except (OSError, ValueError) as error:
        raise ClothVisionError(
            f"cache {cache_dir} is incomplete or corrupt ({error_reason(error)}): {rerun}"
        ) from None
    # Only its presence: the labels themselves are read when an evaluation asks for them.
    if not (cache_dir / NATIVE_LABELS_FILE).is_file():
        raise ClothVisionError(f"cache {cache_dir} lacks {NATIVE_LABELS_FILE}: {rerun}")
    missing = [key for key in REQUIRED_META_KEYS if key not in meta]
    if missing:
        raise ClothVisionError(f"cache {meta_path} lacks {', '.join(missing)}: {rerun}")
    count, (height, width) = len(meta["ids"]), meta["image_size"]
    if images.shape != (count, 3, height, width) or labels.shape != (count, height, width):
        raise ClothVisionError(
            f"cache {cache_dir} holds images {images.shape} and labels {labels.shape}, but its meta.json "
            f"describes {count} images of {height}x{width}: {rerun}"
        )
    # One pass over the labels (a fraction of a second for the full cache) turns a tampered or foreign
    # labels.npy into this line instead of an index error deep inside the loss.
    largest_label = int(labels.max()) if labels.size else 0
    if largest_label >= len(meta["class_names"]):
        raise ClothVisionError(
            f"cache {cache_dir / 'labels.npy'} holds class index {largest_label}, but its meta.json names "
            f"{len(meta['class_names'])} classes (0-{len(meta['class_names']) - 1}): {rerun}"
        )
    return Cache(images, labels, meta, cache_dir)


def normalisation_scale_and_shift(meta: dict, device: torch.device | str = "cpu") -> tuple[torch.Tensor, ...]:
    """(x / 255 - mean) / std rewritten as x * scale + shift, shaped 3×1×1 to broadcast over images."""
    mean = torch.tensor(meta["mean"], dtype=torch.float32, device=device).view(3, 1, 1)
    std = torch.tensor(meta["std"], dtype=torch.float32, device=device).view(3, 1, 1)
    return 1.0 / (255.0 * std), -mean / std


class CustomClothingDataset(Dataset):
    """One split of the cache for a torch DataLoader.

    item = (float32 3×H×W image normalised with the cache's mean/std, int64 H×W label).
    """

    def __init__(self, cache_dir: str | os.PathLike | Cache = "data/processed", split: str = "train",
                 augment: bool = False):
        self.cache = cache_dir if isinstance(cache_dir, Cache) else load_cache(cache_dir)
        self.split = split
        self.augment = augment
        self.rows = self.cache.split_indices(split)
        self.ids = [self.cache.meta["ids"][row] for row in self.rows]
        self.class_names = self.cache.class_names
        self.scale, self.shift = normalisation_scale_and_shift(self.cache.meta)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        row = self.rows[index]
        image = torch.from_numpy(np.array(self.cache.images[row]))
        label = torch.from_numpy(np.array(self.cache.labels[row]))
        if self.augment and torch.rand(()) < 0.5:
            image, label = image.flip(-1), label.flip(-1)
        return torch.addcmul(self.shift, image.float(), self.scale), label.long()

    def __getstate__(self) -> dict:
        # DataLoader workers started by spawn receive a pickled copy: send the folder, not the arrays.
        return {**self.__dict__, "cache": self.cache.cache_dir}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.cache = load_cache(state["cache"])


# Tags that give the batch order and the augmentation draws their own random streams of (seed, epoch): a tag
# after (seed, epoch) keeps them apart even on rank 0, which a rank alone would not (NumPy pads seeds with 0).
ORDER_STREAM, AUGMENTATION_STREAM = 0, 1


class DeviceBatchLoader:
    """Batches of one split from tensors held on `device` (moved there once, as uint8).

    Each batch is gathered, augmented and normalised on the device in whole-batch operations; `augment` is
    one of AUGMENT_CHOICES, and 'full' zooms by factors in [1/zoom_range, zoom_range]. `shuffle=True` marks a
    training loader: every epoch (set_epoch) draws one permutation from (seed, epoch), identical on every rank;
    with world_size > 1 it is padded by repeating its first samples to a multiple of world_size and dealt out
    like DistributedSampler, so every rank gets the same number of batches (DDP needs that). `shuffle=False`
    marks an evaluation loader: rows in order, dealt out rank::world_size, so the ranks together see every
    sample exactly once.
    """

    def __init__(self, cache: Cache, split: str, batch_size: int, device: torch.device | str,
                 shuffle: bool = False, augment: str = "none", seed: int = 0, rank: int = 0,
                 world_size: int = 1, drop_last: bool = False, zoom_range: float = DEFAULT_ZOOM_RANGE):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        if augment not in AUGMENT_CHOICES:
            raise ClothVisionError(f"unknown augmentation '{augment}': use one of {', '.join(AUGMENT_CHOICES)}")
        self.device = torch.device(device)
        self.split, self.batch_size, self.shuffle, self.augment = split, batch_size, shuffle, augment
        self.seed, self.rank, self.world_size, self.drop_last = seed, rank, world_size, drop_last
        self.zoom_range = zoom_range
        self.epoch = 0
        rows = cache.split_indices(split)
        self.ids = [cache.meta["ids"][row] for row in rows]
        self.class_names = cache.class_names
        self.images = torch.from_numpy(np.ascontiguousarray(cache.images[rows])).to(self.device)
        self.labels = torch.from_numpy(np.ascontiguousarray(cache.labels[rows])).to(self.device)
        self.scale, self.shift = normalisation_scale_and_shift(cache.meta, self.device)
        if shuffle:
            self.num_samples = math.ceil(len(rows) / world_size)
        else:
            self.num_samples = len(range(rank, len(rows), world_size))

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose permutation and augmentation the next iteration uses."""
        self.epoch = epoch

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def positions(self) -> np.ndarray:
        """Positions (into this split) of the samples this rank sees this epoch, in batch order."""
        split_size = len(self.ids)
        if not self.shuffle:
            return np.arange(self.rank, split_size, self.world_size)
        order = np.random.default_rng([self.seed, self.epoch, ORDER_STREAM]).permutation(split_size)
        padded = np.resize(order, self.num_samples * self.world_size)
        return padded[self.rank::self.world_size]

    def __iter__(self):
        positions = torch.from_numpy(self.positions()).to(self.device)
        starts = range(0, len(self) * self.batch_size, self.batch_size)
        # Drawn on the CPU from (seed, epoch, rank) so a run repeats exactly on any device, and sent to the
        # device in one copy per epoch: a copy per step would make the CPU wait for the GPU's previous step.
        random = np.random.default_rng([self.seed, self.epoch, AUGMENTATION_STREAM, self.rank])
        if self.augment == "flip":
            flips = random.random(len(positions)) < 0.5
            rows_per_batch = [np.flatnonzero(flips[start:start + self.batch_size]) for start in starts]
            flip_rows = torch.from_numpy(np.concatenate(rows_per_batch)).to(self.device).split(
                [len(rows) for rows in rows_per_batch])
        elif self.augment == "full":
            draws = draw_augmentation(random, len(positions), self.zoom_range).to(self.device)
        for batch_number, start in enumerate(starts):
            batch = positions[start:start + self.batch_size]
            images = self.images.index_select(0, batch)
            labels = self.labels.index_select(0, batch)
            if self.augment == "flip":
                # Flip only the chosen rows of the fresh batch copy, in place: about a quarter less work
                # than choosing between a flipped and an unflipped batch.
                rows = flip_rows[batch_number]
                images.index_copy_(0, rows, images.index_select(0, rows).flip(-1))
                labels.index_copy_(0, rows, labels.index_select(0, rows).flip(-1))
            elif self.augment == "full":
                yield augment_batch(images, labels, draws[start:start + len(batch)], self.scale, self.shift)
                continue
            yield torch.addcmul(self.shift, images.float(), self.scale), labels.long()
