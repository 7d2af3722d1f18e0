"""bench.py rows 1-3: label encoding, preprocessing and data loading against the original methods."""

import contextlib
import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from benchmarks.original_baselines import (
    DecodeEveryEpochDataset,
    original_encode_label,
    original_one_hot_lookup,
)
from benchmarks.table import Row, format_bytes, format_ratio, format_seconds
from benchmarks.timing import median_seconds_alternating, synchronizer, time_call
from dataset import Cache, CustomClothingDataset, DeviceBatchLoader, load_cache
from helpers.cache_conversion import default_worker_count
from helpers.dataset_layouts import KAGGLE_LAYOUT, find_dataset
from helpers.errors import ClothVisionError
from helpers.image_io import read_rgb_image
from label_encoder import LabelEncoder, read_groundtruth_mat
from preprocess import preprocess

# The original trained with batches of 8 behind a single-process DataLoader.
ORIGINAL_BATCH_SIZE = 8
PREPROCESS_GOAL_SECONDS = 15
PROJECT_CALLS_PER_ORIGINAL_CALL = 10
FULL_DATASET_SIZE = 1004


@dataclass
class ColourLabels:
    """Colour label images (H×W×3 uint8, every pixel one palette colour) and the encoder of their palette."""

    encoder: LabelEncoder
    images: list[np.ndarray]
    source: str


def read_colour_labels(data_dir: Path, kaggle_dir: Path | None, count: int) -> ColourLabels:
    """The first count colour labels: the Kaggle layout's PNGs when there are any, else painted .mat maps.

    Painting a .mat map with the class palette gives exactly the array a Kaggle PNG decodes to (every pixel
    one class colour), so both sources cost the encoders the same per pixel.
    """
    if kaggle_dir is not None:
        dataset = find_dataset(kaggle_dir)
        if dataset.layout != KAGGLE_LAYOUT:
            raise ClothVisionError(f"--kaggle-data {kaggle_dir} is not in the Kaggle layout "
                                   f"({KAGGLE_LAYOUT.describe()}): pass such a folder or leave the flag out")
    else:
        dataset = find_dataset(data_dir)
    samples, encoder = dataset.samples[:count], LabelEncoder.from_class_file(dataset.class_file)
    if dataset.layout == KAGGLE_LAYOUT:
        images = [np.asarray(read_rgb_image(sample.label_path)) for sample in samples]
        source = f"{len(images)} colour PNGs of {dataset.root}"
    else:
        palette = np.asarray(encoder.palette, dtype=np.uint8)
        num_classes = len(encoder.class_names)
        images = [palette[read_groundtruth_mat(sample.label_path, num_classes)] for sample in samples]
        source = f"{len(images)} .mat labels of {dataset.root} painted with the class palette"
    return ColourLabels(encoder, images, source)


def measure_label_encoding(labels: ColourLabels, repeats: int) -> tuple[Row, float]:
    """Per-image time of the original one-hot encoder and of LabelEncoder.encode on the same labels.

    Returns the row and the original's seconds per label. Both start from the decoded H×W×3 array.
    """
    lookup = original_one_hot_lookup(labels.encoder.palette)
    corner = labels.images[0][:8, :8]
    # Warm-up on a corner: builds the encoder's lookup table and the baseline's code paths.
    original_encode_label(corner, lookup)
    labels.encoder.encode(corner)
    baseline_seconds, project_seconds = [], []
    for image in labels.images:
        for _ in range(repeats):
            started = time.perf_counter()
            one_hot = original_encode_label(image, lookup)
            baseline_seconds.append(time.perf_counter() - started)
            # One call of the fast encoder is one preemption away from a wrong median: time a burst of them.
            project_seconds += [time_call(lambda image=image: labels.encoder.encode(image))
                                for _ in range(PROJECT_CALLS_PER_ORIGINAL_CALL)]
        if not torch.equal(one_hot.argmax(-1), torch.from_numpy(labels.encoder.encode(image)).long()):
            raise RuntimeError("the original encoder and LabelEncoder disagree on a label")
    baseline, project = float(np.median(baseline_seconds)), float(np.median(project_seconds))
    height, width = labels.images[0].shape[:2]
    num_classes = len(labels.encoder.class_names)
    one_hot_bytes, index_bytes = height * width * num_classes, height * width
    row = Row(
        "label encoding",
        f"per-pixel apply_along_axis one-hot: {format_seconds(baseline)}/image, "
        f"{format_bytes(one_hot_bytes)}/label (uint8 H×W×{num_classes} as stored; "
        f"{format_bytes(8 * one_hot_bytes)} float64 while encoding)",
        f"LabelEncoder.encode: {format_seconds(project)}/image, "
        f"{format_bytes(index_bytes)}/label (uint8 H×W)",
        f"{format_ratio(baseline / project)} faster, {format_ratio(one_hot_bytes / index_bytes)} smaller, "
        "same classes",
        ">= 500x",
        f"{labels.source}, {height}×{width}; medians over {repeats} original call(s) per label, each followed "
        f"by {PROJECT_CALLS_PER_ORIGINAL_CALL} LabelEncoder calls",
    )
    return row, baseline


def measure_preprocessing(data_dir: Path, cache_dir: Path, image_size: tuple[int, int],
                          baseline_seconds_per_label: float) -> Row:
    """Wall time of preprocess() into cache_dir (its progress output is kept off the table)."""
    with contextlib.redirect_stdout(io.StringIO()):
        seconds = time_call(lambda: preprocess(data_dir, cache_dir, image_size))
    count = len(load_cache(cache_dir).meta["ids"])
    baseline = (f"none (the original decoded every image every epoch); its label encoding alone ≈ "
                f"{baseline_seconds_per_label * count / 60:.1f} min for {count} labels (row 1 × {count}, "
                "extrapolated)")
    goal = f"<= {PREPROCESS_GOAL_SECONDS} s for {FULL_DATASET_SIZE} images on 2 cores"
    return Row(
        "preprocessing",
        baseline,
        f"preprocess.py: {count} images in {seconds:.1f} s",
        f"{count / seconds:.1f} images/s",
        goal,
        f"{image_size[0]}×{image_size[1]}, {default_worker_count()} worker process(es)",
    )


def measure_data_loading(data_dir: Path, cache: Cache, device: torch.device, baseline_images: int,
                         rounds: int) -> list[Row]:
    """Training images/s of the decode-every-epoch loader, the cached per-item Dataset and DeviceBatchLoader.

    The decode-every-epoch loader reads only its first baseline_images training images per round (it is
    slow); the cached loaders run whole epochs of the training split. All deliver normalised, randomly
    flipped batches of 8 on `device`.
    """
    dataset = find_dataset(data_dir)
    encoder = LabelEncoder.from_class_file(dataset.class_file)
    samples = {sample.image_id: sample for sample in dataset.samples}
    train_ids = [cache.meta["ids"][row] for row in cache.split_indices("train")]
    baseline_samples = [samples[image_id] for image_id in train_ids[:baseline_images]]
    decode_every_epoch = DataLoader(
        DecodeEveryEpochDataset([sample.photo_path for sample in baseline_samples],
                                [sample.label_path for sample in baseline_samples],
                                encoder.encode_file, tuple(cache.meta["image_size"]),
                                cache.meta["mean"], cache.meta["std"]),
        batch_size=ORIGINAL_BATCH_SIZE, shuffle=True)
    per_item = DataLoader(CustomClothingDataset(cache, "train", augment=True),
                          batch_size=ORIGINAL_BATCH_SIZE, shuffle=True)
    device_batches = DeviceBatchLoader(cache, "train", ORIGINAL_BATCH_SIZE, device, shuffle=True,
                                       augment="flip")

    def consume(loader) -> None:
        for images, labels in loader:
            images.to(device, non_blocking=True)
            labels.to(device, non_blocking=True)

    contenders = {"decode": lambda: consume(decode_every_epoch), "per_item": lambda: consume(per_item),
                  "device": lambda: consume(device_batches)}
    seconds = median_seconds_alternating(contenders, repeats=rounds, warmup=1,
                                         synchronize=synchronizer(device))
    images_per_second = {
        "decode": len(baseline_samples) / seconds["decode"],
        "per_item": len(per_item.dataset) / seconds["per_item"],
        "device": device_batches.num_samples / seconds["device"],
    }
    baseline = (f"decode JPEG + label, resize, normalise per item (DataLoader, 0 workers): "
                f"{images_per_second['decode']:.1f} images/s")
    measured_on = (f"{device.type}, batch {ORIGINAL_BATCH_SIZE}, flips on, {len(baseline_samples)} vs "
                   f"{len(train_ids)} training images per round, median of {rounds} alternated rounds")
    return [
        Row("data loading", baseline,
            f"DeviceBatchLoader (uint8 cache on {device.type}, whole-batch normalise): "
            f"{images_per_second['device']:.0f} images/s",
            f"{format_ratio(images_per_second['device'] / images_per_second['decode'])} faster", ">= 10x",
            measured_on),
        Row("data loading", baseline,
            f"CustomClothingDataset over the cache (DataLoader, 0 workers): "
            f"{images_per_second['per_item']:.0f} images/s",
            f"{format_ratio(images_per_second['per_item'] / images_per_second['decode'])} faster", "-",
            measured_on),
    ]

