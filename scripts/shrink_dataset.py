"""Copy the CCP dataset already resized to the training size, small enough to travel to a GPU machine.

    python -m scripts.shrink_dataset [--data data] [--out data/ccp_496x304] [--size 496 304] [--quality 95]

The full-size photos and annotations (about 68 MiB) exceed what a remote machine's file transfer may
carry (64 MiB); at 496×304 they take about 55 MiB. Photos are resized exactly as preprocess.py resizes
them (bilinear, antialiased) and saved as JPEG; labels are resized by nearest neighbour and saved as
compressed .mat annotations; label_list.mat is copied. preprocess.py on the copy at the same size resizes
nothing, so its cache differs from one made from the full-size photos only by the JPEG re-encoding of
the photos; the labels are identical.
"""

import argparse
import shutil
import sys
from pathlib import Path

import scipy.io
from PIL import Image

from helpers.atomic_files import atomic_directory
from helpers.cache_conversion import convert_sample
from helpers.dataset_layouts import ORIGINAL_LAYOUT, find_dataset
from helpers.errors import ClothVisionError, run_cli
from label_encoder import LabelEncoder
from preprocess import DEFAULT_SIZE, positive_int


def shrink_dataset(data_dir: Path, out_dir: Path, size: tuple[int, int], quality: int) -> int:
    """Write the resized copy to out_dir (atomically, original CCP layout); returns its size in bytes."""
    dataset = find_dataset(data_dir)
    if dataset.layout != ORIGINAL_LAYOUT:
        raise ClothVisionError(f"{data_dir} is in the {dataset.layout.name} layout: shrinking reads the original "
                               f"CCP layout ({ORIGINAL_LAYOUT.describe()}); pass such a folder")
    with atomic_directory(out_dir) as building:
        photos = building / ORIGINAL_LAYOUT.photo_folder
        labels = building / ORIGINAL_LAYOUT.label_folder
        photos.mkdir(parents=True)
        labels.mkdir(parents=True)
        shutil.copy2(data_dir / ORIGINAL_LAYOUT.class_file, building / ORIGINAL_LAYOUT.class_file)
        encoder = LabelEncoder.from_class_file(dataset.class_file)
        for sample in dataset.samples:
            photo, label = convert_sample(sample, encoder, size)
            Image.fromarray(photo.transpose(1, 2, 0)).save(photos / f"{sample.image_id}.jpg", quality=quality)
            scipy.io.savemat(labels / f"{sample.image_id}.mat", {"groundtruth": label}, do_compression=True)
    return sum(path.stat().st_size for path in out_dir.rglob("*") if path.is_file())


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Copy the CCP dataset resized to the training size.",
                                     add_help=add_help)
    parser.add_argument("--data", type=Path, default=Path("data"),
                        help="dataset folder in the original CCP layout (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("data/ccp_496x304"),
                        help="new folder to write; keep it git-ignored, under data/ (default: %(default)s)")
    parser.add_argument("--size", nargs=2, type=positive_int, default=list(DEFAULT_SIZE), metavar=("H", "W"),
                        help="height and width, the size the study preprocesses at (default: 496 304)")
    parser.add_argument("--quality", type=int, default=95, choices=range(50, 101), metavar="50-100",
                        help="JPEG quality of the resized photos (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = get_args_parser().parse_args(argv)
    # The copy is written over --out: never over a folder that holds anything, the dataset included.
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        raise ClothVisionError(f"--out {args.out} already exists: delete it or choose a new folder")
    total = shrink_dataset(args.data, args.out, tuple(args.size), args.quality)
    print(f"wrote {args.out}: {total / 2**20:.1f} MiB at {args.size[0]}x{args.size[1]}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
