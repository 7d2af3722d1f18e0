"""Dataset on disk -> a compact cache that training only loads: decode and resize every photo once.

    python preprocess.py [--data DIR] [--out DIR] [--size H W] [--limit N] [--seed N] [--workers N]
                         [--force] [--download] [--url URL]

Reads either layout the CCP dataset ships in (the original repository's, or the Kaggle re-packaging)
and writes, atomically, a folder holding
    images.npy  uint8 N×3×H×W   (bilinear, antialiased resize)
    labels.npy  uint8 N×H×W     (class indices, nearest resize)
    native_labels.npz  every label at the annotations' own size (uint8 class indices, deflated, one entry
                per image id), for scoring at that size
    meta.json   class names, palette, size, mean/std, ids, the seeded train/val/test split, pixel counts,
                the shape of every native label.
Everything loads with np.load (the two .npy files with mmap_mode="r"): no pickle. A cache already at --out
is replaced by the same cache (the same images at the same size and split seed) and, with --force, by any.
"""

import argparse
import json
import os
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dataset import CACHE_FORMAT_VERSION, NATIVE_LABELS_FILE, SPLIT_NAMES, read_meta
from helpers.atomic_files import atomic_directory
from helpers.cache_conversion import conversion_pool, default_worker_count, write_in_worker
from helpers.dataset_layouts import SourceDataset, find_dataset, find_layout
from helpers.download import DEFAULT_URL, download_dataset
from helpers.errors import ClothVisionError, run_cli
from helpers.output_paths import check_output_folder
from label_encoder import LabelEncoder

DEFAULT_SIZE = (496, 304)
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)
# torchvision's pretrained backbones expect ImageNet statistics; the U-net is trained with them too.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def add_native_label(archive: zipfile.ZipFile, image_id: str, label: np.ndarray) -> None:
    """One entry of an .npz archive, written as np.savez_compressed writes it, but one image at a time
    so the labels never all sit in memory together."""
    with archive.open(f"{image_id}.npy", "w", force_zip64=True) as entry:
        np.lib.format.write_array(entry, label, allow_pickle=False)


def split_rows(count: int, seed: int, fractions: tuple[float, float, float] = SPLIT_FRACTIONS) -> dict:
    """A seeded random split of rows 0..count-1 into train/val/test.

    val and test get count × fraction rows rounded half up (at least one each), train the rest:
    1004 images -> 702 / 151 / 151. Row indices are sorted within each split.
    """
    if count < len(SPLIT_NAMES):
        raise ClothVisionError(f"{count} images cannot be split into train, val and test: use at least 3")
    order = np.random.default_rng(seed).permutation(count)
    val_count, test_count = (max(1, int(count * fraction + 0.5)) for fraction in fractions[1:])
    train_count = count - val_count - test_count
    parts = np.split(order, [train_count, train_count + val_count])
    return {name: sorted(part.tolist()) for name, part in zip(SPLIT_NAMES, parts, strict=True)}


def check_cache_destination(out_dir: Path) -> None:
    """Refuse an --out that cannot be written, and a folder that is not a cache: --out pointed at the data
    would delete it."""
    check_output_folder(out_dir, "--out", replaced=True)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "meta.json").is_file():
        raise ClothVisionError(
            f"--out {out_dir} is a non-empty folder that is not a preprocess.py cache, and it would be "
            "replaced: choose another --out or empty it"
        )


def cache_identity(dataset: SourceDataset, size: tuple[int, int], seed: int) -> dict:
    """The entries of a cache's meta that say which cache it is: two caches that agree on them hold the same
    arrays and split (the class names and palette come with the source folder)."""
    return {"source_dir": str(dataset.root.resolve()), "ids": [sample.image_id for sample in dataset.samples],
            "image_size": list(size), "seed": seed}


def describe_cache(meta: dict) -> str:
    height, width = meta.get("image_size") or ("?", "?")
    return (f"{len(meta.get('ids', []))} images of {meta.get('source_dir', 'an unrecorded folder')} at "
            f"{height}x{width}, split seed {meta.get('seed', '?')}")


def check_cache_replacement(out_dir: Path, planned: dict) -> None:
    """Refuse to replace the cache at out_dir by a different one: a quick --limit 40 run must not silently
    take the place of the full cache every later train.py reads. The same cache again (after an interrupted
    or damaged one, or a format change) is rebuilt silently, and so is a cache whose meta cannot be read."""
    existing = read_meta(out_dir)
    if existing is None or all(existing.get(key) == value for key, value in planned.items()):
        return
    raise ClothVisionError(
        f"--out {out_dir} holds a cache of {describe_cache(existing)}; this run would replace it with "
        f"{describe_cache(planned)}: choose another --out, or add --force to replace it"
    )


def write_cache(dataset: SourceDataset, out_dir: Path, size: tuple[int, int], seed: int,
                workers: int) -> dict:
    """Convert every sample into a new cache folder at out_dir (atomically) and return its meta."""
    count, (height, width) = len(dataset.samples), size
    encoder = LabelEncoder.from_class_file(dataset.class_file)
    class_names = encoder.class_names
    pixel_counts = np.zeros((count, len(class_names)), dtype=np.int64)
    tasks = list(enumerate(dataset.samples))
    # Before any conversion: too few images for a split fails at once, not after converting them all.
    split = split_rows(count, seed)
    native_label_shapes = {}
    with atomic_directory(out_dir) as building:
        shapes = {"images.npy": (count, 3, height, width), "labels.npy": (count, height, width)}
        for name, shape in shapes.items():
            np.lib.format.open_memmap(building / name, mode="w+", dtype=np.uint8, shape=shape)
        # Worker processes even for workers=1: the allocator tuning then never touches the caller's process.
        with (conversion_pool(workers, building, encoder, size) as pool,
              zipfile.ZipFile(building / NATIVE_LABELS_FILE, "w", zipfile.ZIP_DEFLATED) as native_labels,
              tqdm(total=count, desc="preprocess", unit="image", disable=None) as progress):
            for row, counts, native_label in pool.imap_unordered(write_in_worker, tasks, chunksize=8):
                pixel_counts[row] = counts
                image_id = dataset.samples[row].image_id
                add_native_label(native_labels, image_id, native_label)
                native_label_shapes[image_id] = list(native_label.shape)
                progress.update()
        meta = {
            "format_version": CACHE_FORMAT_VERSION,
            "source_layout": dataset.layout.name,
            **cache_identity(dataset, size, seed),
            "class_names": class_names,
            "palette": encoder.palette,
            "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD),
            "split": split,
            "split_fractions": list(SPLIT_FRACTIONS),
            "train_class_pixel_counts": pixel_counts[split["train"]].sum(axis=0).tolist(),
            # In id order, whatever order the workers finished in.
            "native_label_shapes": dict(sorted(native_label_shapes.items())),
        }
        (building / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return meta


def preprocess(data_dir: str | os.PathLike = "data", out_dir: str | os.PathLike = "data/processed",
               size: tuple[int, int] = DEFAULT_SIZE, limit: int | None = None, seed: int = 0,
               workers: int | None = None, download: bool = False, url: str = DEFAULT_URL,
               force: bool = False) -> Path:
    """Build the cache from the dataset in data_dir (downloading it first if asked) and return out_dir.
    A different cache already at out_dir (other images, size or seed) is replaced only with force."""
    started = time.perf_counter()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    height, width = size
    if height < 1 or width < 1 or seed < 0:
        raise ClothVisionError(
            f"size {height}x{width}, seed {seed}: height and width must be positive, the seed 0 or more"
        )
    # Before the download, so a bad --out is reported before minutes of fetching.
    check_cache_destination(out_dir)
    if download:
        if data_dir.is_dir() and find_layout(data_dir) is not None:
            print(f"{data_dir} already holds the dataset: skipping the download")
        else:
            download_dataset(data_dir, url)
    dataset = find_dataset(data_dir)
    print(f"{dataset.layout.title} layout in {data_dir}: {len(dataset.samples)} photos with pixel-level "
          f"labels, {dataset.unannotated_photo_count} photos without them ignored")
    if limit is not None:
        dataset.samples = dataset.samples[:limit]
    if not force:
        check_cache_replacement(out_dir, cache_identity(dataset, (height, width), seed))
    workers = max(1, min(workers or default_worker_count(), len(dataset.samples)))
    meta = write_cache(dataset, out_dir, (height, width), seed, workers)
    split_sizes = "/".join(str(len(meta["split"][name])) for name in SPLIT_NAMES)
    print(f"wrote {out_dir}: {len(meta['ids'])} images at {height}x{width}, train/val/test {split_sizes}, "
          f"in {time.perf_counter() - started:.1f} s")
    return out_dir


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or a positive integer, got {text}")
    return value


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Decode, resize and cache the CCP dataset once for training.", add_help=add_help,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data", default="data", help="dataset folder (original CCP or Kaggle layout)")
    parser.add_argument("--out", default="data/processed", help="cache folder to write (replaced atomically)")
    parser.add_argument("--size", nargs=2, type=positive_int, default=list(DEFAULT_SIZE), metavar=("H", "W"),
                        help="height and width every image and label is resized to")
    parser.add_argument("--limit", type=positive_int, default=None,
                        help="use only the first N annotated images by id, for quick experiments (None: all)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the train/val/test split")
    parser.add_argument("--workers", type=positive_int, default=None,
                        help="parallel processes (None: one per CPU core available)")
    parser.add_argument("--force", action="store_true",
                        help="replace a cache at --out that holds other images, another size or seed (without it "
                             "such a cache is kept and the run refused; the same cache is always rebuilt)")
    parser.add_argument("--download", action="store_true",
                        help="first download the dataset into --data unless it is already there")
    parser.add_argument("--url", default=DEFAULT_URL, help="zip archive of the CCP repository for --download")
    return parser


def main(argv: list[str] | None = None) -> Path:
    args = get_args_parser().parse_args(argv)
    return preprocess(args.data, args.out, tuple(args.size), args.limit, args.seed, args.workers,
                      args.download, args.url, args.force)


if __name__ == "__main__":
    sys.exit(run_cli(main))
