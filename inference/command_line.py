"""img_test.py's flags: a figure of one photo (the default), PNGs of a folder (--out-dir), descriptions of what
people wear (--describe) and the photos that match a description (--find)."""

import argparse
from pathlib import Path

from evaluation.test_time_augmentation import DEFAULT_TTA, TTA_CHOICES
from helpers.devices import DEVICE_CHOICES, PRECISION_CHOICES
from helpers.errors import ClothVisionError
from helpers.output_paths import check_output_file, check_output_folder
from inference.attire import DEFAULT_MINIMUM_SHARE
from trainers.options import TrainingOptions

# What `python train.py` writes with its defaults, so that its first checkpoint is img_test.py's default.
DEFAULT_RUN = TrainingOptions()
DEFAULT_CHECKPOINT = Path(DEFAULT_RUN.out) / f"{DEFAULT_RUN.model}.pt"
LAST_CHECKPOINT_SUFFIX = "_last"
DEFAULT_TOP = 10


def default_checkpoint() -> Path:
    """DEFAULT_CHECKPOINT, or else the only best checkpoint in its folder, saying which; else an error."""
    if DEFAULT_CHECKPOINT.is_file():
        return DEFAULT_CHECKPOINT
    results = DEFAULT_CHECKPOINT.parent
    found = sorted(path for path in results.glob("*.pt") if not path.stem.endswith(LAST_CHECKPOINT_SUFFIX))
    if len(found) == 1:
        print(f"Using {found[0]}, the only checkpoint in {results}/ (--checkpoint FILE chooses another)")
        return found[0]
    if not found:
        raise ClothVisionError(f"checkpoint {DEFAULT_CHECKPOINT} not found, and {results}/ holds no other: train "
                               "one with `python train.py`, or pass --checkpoint FILE")
    raise ClothVisionError(f"checkpoint {DEFAULT_CHECKPOINT} not found, and {results}/ holds "
                           f"{', '.join(path.name for path in found)}: pass one with --checkpoint FILE")


def default_figure_path(image_path: Path) -> Path:
    """Where the figure of one photo goes when no display can show it and --save names no file."""
    return Path(DEFAULT_RUN.out) / f"prediction_{image_path.stem}.png"


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Predict the clothes in a photo (figure: Original | Label | Prediction) or in every "
                    "image of a folder (--out-dir: mask, overlay and class-index PNGs); describe what people "
                    "wear (--describe) or find the photos that match a description (--find).",
        add_help=add_help)
    parser.add_argument("input", nargs="?", default=None, metavar="INPUT",
                        help="an image file, or a folder of images together with --out-dir, --describe or "
                             "--find; for --find also a descriptions file written by --json (default: none; "
                             "--test-split-image picks one instead)")
    parser.add_argument("--checkpoint", default=None, metavar="FILE",
                        help="checkpoint: a .pt file written by train.py, or an .onnx file written by "
                             f"export.py, run in ONNX Runtime (default: {DEFAULT_CHECKPOINT}, which `python "
                             f"train.py` writes, else the only checkpoint in {DEFAULT_CHECKPOINT.parent}/; "
                             "--find --save: the one the descriptions record)")
    parser.add_argument("--label", default=None, metavar="FILE",
                        help="label of the image: a .mat annotation or a PNG painted with the checkpoint's "
                             "palette (default: found automatically for dataset photos, else none)")
    parser.add_argument("--save", default=None, metavar="OUT.png",
                        help="write the figure there (.png, .pdf, .svg, ...) instead of showing it; with "
                             "--describe the photo, its overlay and its garments; with --find the contact sheet "
                             "of the best photos (default: show the figure when a display exists, else write "
                             f"{default_figure_path(Path('PHOTO.jpg'))})")
    parser.add_argument("--out-dir", default=None, metavar="DIR",
                        help="write <name>_mask.png, <name>_overlay.png and <name>_classes.png for the "
                             "image, or for every image of the folder, into DIR, skipping files that are "
                             "not images, and their descriptions into DIR/descriptions.jsonl (default: none, "
                             "draw the figure)")
    parser.add_argument("--describe", action="store_true",
                        help="print what the person in each photo wears, one line per photo: "
                             "'0004.jpg: grey coat, white pants, red shoes' (default: off)")
    parser.add_argument("--find", default=None, metavar="QUERY",
                        help="rank the photos by how well they match QUERY, comma-separated terms of an "
                             "optional colour and a garment class or group: 'grey coat, red footwear'; when no "
                             "photo matches at all, the garments they show nearest to each term are named "
                             "(default: none)")
    parser.add_argument("--score-tags", action="store_true",
                        help="with --describe: score the garments found in each dataset photo against its tags "
                             "(annotations/image-level/NNNN.mat beside photos/, else the classes of its label): "
                             "precision, recall and F1 per class, per garment group and over all (default: off)")
    parser.add_argument("--tag-report", default=None, metavar="FILE.json",
                        help="with --score-tags: also write the scores there as JSON (default: none)")
    parser.add_argument("--use-labels", action="store_true",
                        help="with --describe or --find: describe dataset photos from their ground-truth "
                             "labels instead of a prediction; no checkpoint is needed (default: off)")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="with --describe or --find: also write the descriptions there, one JSON object "
                             "per photo per line, which --find reads back instead of a folder (default: none)")
    parser.add_argument("--top", type=int, default=DEFAULT_TOP, metavar="N",
                        help="with --find: how many of the best photos to print and draw (default: %(default)s)")
    parser.add_argument("--min-share", type=float, default=DEFAULT_MINIMUM_SHARE, metavar="S",
                        help="a predicted garment covering less than this share of the person's pixels is "
                             "left out of descriptions as noise; labels keep every garment "
                             "(default: %(default)s)")
    parser.add_argument("--device", default="auto", metavar="DEVICE",
                        help=f"device to run the model on: {', '.join(DEVICE_CHOICES)} or cuda:N; an .onnx "
                             "checkpoint runs on the CPU (default: %(default)s)")
    parser.add_argument("--precision", default="auto", choices=PRECISION_CHOICES,
                        help="auto: bf16 autocast + channels_last on CUDA and on CPUs with native bf16, float32 "
                             "elsewhere; an .onnx checkpoint runs in float32 (default: %(default)s)")
    parser.add_argument("--tta", default=DEFAULT_TTA, choices=TTA_CHOICES,
                        help="test-time augmentation of every prediction (figure, folder, --describe, --find): "
                             "none, or flip: the mean of the scores of the photo and of its mirror image, "
                             "mirrored back, at twice the inference time (default: %(default)s)")
    parser.add_argument("--test-split-image", type=int, default=None, metavar="K",
                        help="predict the K-th photo (0-based) of the checkpoint's test split, found under "
                             "--data-dir, instead of INPUT (default: none)")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="dataset folder that --test-split-image looks in (default: the one the checkpoint's "
                             "cache was made from, as its meta.json records, else data)")
    return parser


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse flags that do not go together, before any model is loaded."""
    if (args.input is None) == (args.test_split_image is None):
        parser.error("give either an image (or folder) or --test-split-image K")
    describing = args.describe or args.find is not None
    checks = [
        (not (args.describe and args.find is not None),
         "--describe and --find are two commands: --find prints the descriptions of the photos it ranks"),
        (describing or not (args.use_labels or args.json), "--use-labels and --json go with --describe or --find"),
        (not (describing and (args.out_dir or args.label)),
         "--out-dir and --label belong to predicting: leave them out of --describe and --find"),
        (not args.score_tags or (args.describe and args.save is None),
         "--score-tags goes with --describe of photos: add --describe, and leave out --save"),
        (args.tag_report is None or args.score_tags, "--tag-report goes with --score-tags"),
        (args.top >= 1, f"--top {args.top}: show at least 1 photo"),
        (0 <= args.min_share < 1, f"--min-share {args.min_share:g}: use a share from 0 (keep every garment) to "
                                  "below 1"),
        (args.out_dir is None or (args.label is None and args.save is None),
         "--label and --save belong to the figure of one image: leave out --out-dir to use them"),
    ]
    for passed, message in checks:
        if not passed:
            raise ClothVisionError(message)


def check_output_paths(args: argparse.Namespace) -> None:
    """Every file and folder the command will write can be written: checked before any model is loaded."""
    for flag, path in (("--save", args.save), ("--json", args.json)):
        if path is not None:
            check_output_file(path, flag)
    if args.out_dir is not None:
        check_output_folder(args.out_dir, "--out-dir")
