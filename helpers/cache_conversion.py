"""Dataset samples into rows of a cache: decode one photo and its label, resize both, and the worker processes
that write them straight into preprocess.py's memory-mapped arrays."""

import ctypes
import ctypes.util
import multiprocessing
import multiprocessing.pool
import multiprocessing.synchronize
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from helpers.dataset_layouts import Sample
from helpers.errors import ClothVisionError
from helpers.image_io import read_rgb_image


class LabelFileEncoder(Protocol):
    """What conversion needs of label_encoder.LabelEncoder (helpers import no pipeline module): the class names
    and a label file as a uint8 map of class indices."""

    class_names: list[str]

    def encode_file(self, path: Path) -> np.ndarray: ...


def convert_sample(sample: Sample, encoder: LabelFileEncoder, size: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Decode one photo and its label and resize both to size (H, W): (uint8 3×H×W, uint8 H×W)."""
    return resize_sample(*decode_sample(sample, encoder), size)


def decode_sample(sample: Sample, encoder: LabelFileEncoder) -> tuple[Image.Image, np.ndarray]:
    """One photo and its label (uint8 class indices) at their own size, checked to belong together."""
    photo = read_rgb_image(sample.photo_path)
    label = encoder.encode_file(sample.label_path)
    if label.shape != (photo.height, photo.width):
        raise ClothVisionError(
            f"{sample.label_path}: label is {label.shape[1]}x{label.shape[0]} pixels but its photo "
            f"{sample.photo_path} is {photo.width}x{photo.height}: the two files must belong together; "
            "restore both from the dataset"
        )
    return photo, label


def resize_sample(photo: Image.Image, label: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Photo and label resized to size (H, W): (uint8 3×H×W, uint8 H×W)."""
    height, width = size
    # PIL widens the bilinear filter by the shrink factor, i.e. it antialiases when downscaling.
    photo = photo.resize((width, height), Image.Resampling.BILINEAR)
    label = Image.fromarray(label).resize((width, height), Image.Resampling.NEAREST)
    return np.asarray(photo).transpose(2, 0, 1), np.asarray(label)


class CacheRowWriter:
    """Converts samples straight into rows of the memory-mapped cache arrays, so worker processes
    send back only per-class pixel counts instead of pickled images, and the label at its own size."""

    def __init__(self, cache_dir: Path, encoder: LabelFileEncoder, size: tuple[int, int]):
        self.encoder = encoder
        self.size = size
        self.images = np.load(cache_dir / "images.npy", mmap_mode="r+")
        self.labels = np.load(cache_dir / "labels.npy", mmap_mode="r+")

    def write(self, row: int, sample: Sample) -> tuple[int, np.ndarray, np.ndarray]:
        photo, native_label = decode_sample(sample, self.encoder)
        self.images[row], self.labels[row] = resize_sample(photo, native_label, self.size)
        counts = np.bincount(self.labels[row].ravel(), minlength=len(self.encoder.class_names))
        return row, counts, native_label


_worker_writer: CacheRowWriter | None = None
_stop_requested: multiprocessing.synchronize.Event | None = None
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEPT_FREE_BYTES, LARGEST_HEAP_BLOCK_BYTES = 256 << 20, 32 << 20


def keep_freed_memory_for_reuse() -> None:
    """Every image allocates and frees a few MiB of decode buffers. By default glibc hands such blocks
    back to the kernel at once and the next image faults them in again, page by page, which costs a
    third of preprocessing's CPU time; raised thresholds keep them in the heap. Nothing happens where
    the C library has no mallopt (macOS, Windows)."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_TRIM_THRESHOLD, KEPT_FREE_BYTES)
    mallopt(M_MMAP_THRESHOLD, LARGEST_HEAP_BLOCK_BYTES)


def _start_worker(cache_dir: Path, encoder: LabelFileEncoder, size: tuple[int, int],
                  stop_requested: multiprocessing.synchronize.Event) -> None:
    global _worker_writer, _stop_requested
    # Ctrl-C reaches every process of the terminal's group; only the parent acts on it, so that no worker
    # dies halfway through sending a result and leaves the result queue's lock taken for ever.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keep_freed_memory_for_reuse()
    _worker_writer = CacheRowWriter(cache_dir, encoder, size)
    _stop_requested = stop_requested


def write_in_worker(task: tuple[int, Sample]) -> tuple[int, np.ndarray, np.ndarray] | None:
    if _stop_requested.is_set():  # the parent gave up: what is left is skipped, not converted
        return None
    return _worker_writer.write(*task)


@contextmanager
def conversion_pool(workers: int, cache_dir: Path, encoder: LabelFileEncoder,
                    size: tuple[int, int]) -> Iterator[multiprocessing.pool.Pool]:
    """Worker processes that fill cache_dir's arrays. However the work ends (an error in a worker, which comes
    back as a result, one in the parent, Ctrl-C), the pool is closed and joined, never terminated: a worker
    killed while it sends a result leaves a queue's lock taken, and the pool's own threads then wait on it
    for ever. On failure the workers skip their remaining photos, so the join takes one photo's time."""
    stop_requested = multiprocessing.Event()
    pool = multiprocessing.Pool(workers, _start_worker, (cache_dir, encoder, size, stop_requested))
    try:
        yield pool
    except BaseException:
        stop_requested.set()
        raise
    finally:
        pool.close()
        pool.join()


def default_worker_count() -> int:
    """The CPU cores this process may use (a container's limit, not the host's core count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
