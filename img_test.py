"""Segment clothes in photos with a trained checkpoint: a figure for one photo, PNG files for a folder.

    python img_test.py data/photos/0001.jpg --checkpoint results/unet.pt --save prediction.png
    python img_test.py my_photos/ --out-dir predictions/ --checkpoint results/unet.pt
    python img_test.py photo.jpg --checkpoint results/mobilenetv3.onnx    # ONNX Runtime (export.py)

Everything inference needs (model, class names, palette, image size, normalisation) comes from the
checkpoint, a .pt file of train.py or an .onnx file of export.py; no cache or dataset is needed. From Python:

    from img_test import test_with_image
    prediction, predicted_classes = test_with_image("photo.jpg", checkpoint="results/unet.pt")
"""

import argparse
import math
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from PIL import Image
from tqdm import tqdm

from helpers.dataset_layouts import KAGGLE_LAYOUT, ORIGINAL_LAYOUT
from helpers.devices import DEVICE_CHOICES, PRECISION_CHOICES
from helpers.errors import ClothVisionError, run_cli
from helpers.figures import display_available, figure_format, finish_figure, new_figure
from helpers.image_io import UnreadableImageError, read_rgb_image, write_png
from inference.predictor import SegmentationPredictor
from label_decoder import LabelDecoder
from label_encoder import LabelEncoder

DEFAULT_CHECKPOINT = "results/mobilenetv3.pt"
# Where each dataset layout keeps the label of <root>/<photo folder>/NNNN.jpg, best first. The Kaggle
# layout's .mat comes before its coloured PNG: the PNG is painted with class_dict.csv's colours, which
# a checkpoint trained on the original layout (generated palette) does not know.
KAGGLE_MAT_FOLDER = "labels/pixel_level_labels_mat"
DATASET_LABEL_FILES = {
    ORIGINAL_LAYOUT.photo_folder: (f"{ORIGINAL_LAYOUT.label_folder}/{{id}}{ORIGINAL_LAYOUT.label_suffix}",),
    KAGGLE_LAYOUT.photo_folder: (f"{KAGGLE_MAT_FOLDER}/{{id}}.mat",
                                 f"{KAGGLE_LAYOUT.label_folder}/{{id}}{KAGGLE_LAYOUT.label_suffix}"),
}
PHOTO_SUFFIX = ".jpg"
OVERLAY_OPACITY = 0.5
BACKGROUND_CLASS = 0
OUTPUT_KINDS = ("mask", "overlay", "classes")
PANEL_WIDTH_INCHES = 3.6
LEGEND_ENTRY_WIDTH_INCHES = 1.3
LEGEND_ROW_HEIGHT_INCHES = 0.22
TITLES_HEIGHT_INCHES = 0.6


def predictor_for(checkpoint: str | Path | SegmentationPredictor, device: str,
                  precision: str) -> SegmentationPredictor:
    """The predictor given, or one loaded from the checkpoint file."""
    if isinstance(checkpoint, SegmentationPredictor):
        return checkpoint
    return SegmentationPredictor(checkpoint, device, precision)


def find_dataset_label(image_file: str | Path) -> Path | None:
    """The label of a dataset photo (photos/NNNN.jpg or images/NNNN.jpg beside the annotations), if any."""
    image_file = Path(image_file)
    dataset_root = image_file.parent.parent
    for pattern in DATASET_LABEL_FILES.get(image_file.parent.name, ()):
        candidate = dataset_root / pattern.format(id=image_file.stem)
        if candidate.is_file():
            return candidate
    return None


def read_label(label_file: str | Path, decoder: LabelDecoder, image_file: str | Path,
               image_size: tuple[int, int]) -> np.ndarray:
    """A .mat annotation or a label image painted with the checkpoint's palette, as HxW class indices."""
    label_file = Path(label_file)
    if not label_file.is_file():
        raise ClothVisionError(f"label {label_file} not found: check the path, or leave the label out")
    label = LabelEncoder(decoder.class_names, decoder.palette).encode_file(label_file)
    width, height = image_size
    if label.shape != (height, width):
        raise ClothVisionError(f"label {label_file} is {label.shape[1]}x{label.shape[0]} pixels but image "
                               f"{image_file} is {width}x{height}: pass the label of this image")
    return label


def draw_prediction_figure(image: Image.Image, label: np.ndarray | None, prediction: np.ndarray,
                           decoder: LabelDecoder, title: str, show: bool) -> Figure:
    """Original | Label (when known) | Prediction, above a legend of the colours of the classes shown."""
    panels = [("Original", np.asarray(image))]
    if label is not None:
        panels.append(("Label", decoder.decode(label)))
    panels.append(("Prediction", decoder.decode(prediction)))
    shown_maps = [prediction] if label is None else [label, prediction]
    shown_classes = np.unique(np.concatenate([index_map.ravel() for index_map in shown_maps]))
    # Tall photos get tall panels, odd shapes (a 1-pixel strip) stay readable.
    panel_height = min(max(PANEL_WIDTH_INCHES * image.height / image.width, 1.5), 2.2 * PANEL_WIDTH_INCHES)
    figure_width = PANEL_WIDTH_INCHES * max(len(panels), 2)
    # As few legend rows as fit the width, filled evenly (9 classes: 5 + 4, not 8 + 1).
    legend_rows = math.ceil(len(shown_classes) / max(1, int(figure_width // LEGEND_ENTRY_WIDTH_INCHES)))
    legend_columns = math.ceil(len(shown_classes) / legend_rows)
    figure_height = panel_height + TITLES_HEIGHT_INCHES + LEGEND_ROW_HEIGHT_INCHES * legend_rows
    figure = new_figure(show, figsize=(figure_width, figure_height), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axis, (panel_title, pixels) in zip(axes, panels, strict=True):
        axis.imshow(pixels)
        axis.set_title(panel_title)
        axis.set_axis_off()
    palette, names = np.asarray(decoder.palette) / 255.0, decoder.class_names
    legend_entries = [Patch(facecolor=palette[index], edgecolor="0.5", label=names[index])
                      for index in shown_classes]
    figure.legend(handles=legend_entries, loc="outside lower center", ncols=legend_columns, frameon=False,
                  fontsize="small", handlelength=1.2, columnspacing=1.0)
    figure.suptitle(title)
    return figure


def test_with_image(image_file: str | Path, checkpoint: str | Path | SegmentationPredictor = DEFAULT_CHECKPOINT,
                    label_file: str | Path | None = None, show: bool | None = None,
                    save_to: str | Path | None = None, device: str = "auto",
                    precision: str = "auto") -> tuple[np.ndarray, list[str]]:
    """Predict the clothes in one photo and draw Original | Label | Prediction.

    Returns (prediction, predicted_classes): an HxW uint8 class-index map at the photo's own size and
    the names of the classes in it, in class-index order. The label is label_file, or for a dataset
    photo (…/photos/NNNN.jpg, …/images/NNNN.jpg) the annotation beside it. show=None shows the figure
    only where a display exists; save_to writes it (.png, .pdf, .svg, ...). checkpoint is a .pt file, an
    .onnx file (run in ONNX Runtime, on the CPU in float32) or a SegmentationPredictor already loaded.
    """
    if save_to is not None:
        figure_format(save_to)
    image = read_rgb_image(image_file)
    predictor = predictor_for(checkpoint, device, precision)
    decoder = predictor.decoder
    label_file = label_file if label_file is not None else find_dataset_label(image_file)
    label = None if label_file is None else read_label(label_file, decoder, image_file, image.size)
    prediction = predictor.predict(image)
    predicted_classes = decoder.classes_in(prediction)
    if label is not None:
        print(f"Real classes: {decoder.classes_in(label)}")
    print(f"Predicted classes: {predicted_classes}")
    show = display_available() if show is None else show
    if show or save_to is not None:
        title = f"{Path(image_file).name}: {predictor.model_name} ({predictor.checkpoint_path.name})"
        figure = draw_prediction_figure(image, label, prediction, decoder, title, show)
        finish_figure(figure, show, save_to)
    return prediction, predicted_classes


# The name follows the original project's API; this tells pytest it is not a test when a test imports it.
test_with_image.__test__ = False


@dataclass
class PredictionReport:
    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, UnreadableImageError]] = field(default_factory=list)

    def summary(self, out_dir: str | Path) -> str:
        images = len(self.written) // len(OUTPUT_KINDS)
        lines = [f"Wrote a mask, an overlay and a class-index PNG for {images} images to {out_dir}"]
        if self.skipped:
            listed = ", ".join(f"{path.name} ({error.reason})" for path, error in self.skipped)
            lines.append(f"Skipped {len(self.skipped)} files that are not readable images: {listed}")
        return "\n".join(lines)


def output_stems(image_files: list[Path]) -> list[str]:
    """Output names follow each photo's stem; photos sharing a stem (a.jpg, a.png) keep their full name."""
    stem_counts = Counter(path.stem for path in image_files)
    return [path.stem if stem_counts[path.stem] == 1 else path.name for path in image_files]


def write_prediction_pngs(out_dir: Path, stem: str, image: Image.Image, prediction: np.ndarray,
                          decoder: LabelDecoder) -> list[Path]:
    """<stem>_mask.png (class colours), <stem>_overlay.png (photo under the colours; the background
    class left as photographed) and <stem>_classes.png (class indices, 8-bit grey)."""
    mask = Image.fromarray(decoder.decode(prediction))
    blended = Image.blend(image, mask, OVERLAY_OPACITY)
    background = Image.fromarray(((prediction == BACKGROUND_CLASS) * 255).astype(np.uint8))
    overlay = Image.composite(image, blended, background)
    pictures = {"mask": mask, "overlay": overlay, "classes": prediction}
    return [write_png(out_dir / f"{stem}_{kind}.png", pictures[kind]) for kind in OUTPUT_KINDS]


def predict_files(image_files: list[Path], out_dir: str | Path,
                  predictor: SegmentationPredictor) -> PredictionReport:
    """Write the three PNGs of every readable image into out_dir; unreadable files are skipped, not fatal."""
    out_dir = Path(out_dir)
    report = PredictionReport()
    for image_file, stem in zip(tqdm(image_files, desc="Predicting", unit="image"), output_stems(image_files),
                                strict=True):
        try:
            image = read_rgb_image(image_file)
        except UnreadableImageError as error:
            report.skipped.append((image_file, error))
            continue
        prediction = predictor.predict(image)
        report.written += write_prediction_pngs(out_dir, stem, image, prediction, predictor.decoder)
    return report


def predict_folder(folder: str | Path, out_dir: str | Path,
                   checkpoint: str | Path | SegmentationPredictor = DEFAULT_CHECKPOINT, device: str = "auto",
                   precision: str = "auto") -> PredictionReport:
    """Predict every file directly in folder (hidden files and subfolders aside) into out_dir."""
    folder = Path(folder)
    image_files = sorted(path for path in folder.iterdir()
                         if path.is_file() and not path.name.startswith("."))
    if not image_files:
        raise ClothVisionError(f"folder {folder} holds no files: pass a folder of images")
    report = predict_files(image_files, out_dir, predictor_for(checkpoint, device, precision))
    if not report.written:
        first_path, first_error = report.skipped[0]
        raise ClothVisionError(f"folder {folder} holds no readable image ({len(report.skipped)} files "
                               f"skipped, e.g. {first_path.name}: {first_error.reason}): "
                               "pass a folder of photos")
    return report


def test_split_image(checkpoint: str | Path | SegmentationPredictor, position: int,
                     data_dir: str | Path = "data") -> Path:
    """The position-th photo (0-based) of the test split the checkpoint was trained with, under data_dir."""
    # Read on the CPU: only the checkpoint's split is needed here, not an accelerator.
    predictor = predictor_for(checkpoint, "cpu", "auto")
    test_ids = predictor.split_ids.get("test", [])
    if not test_ids:
        raise ClothVisionError(f"checkpoint {predictor.checkpoint_path} records no test split: "
                               "pass an image path instead")
    if not 0 <= position < len(test_ids):
        raise ClothVisionError(f"test-split image {position} does not exist: the test split of "
                               f"{predictor.checkpoint_path} has {len(test_ids)} images, numbered "
                               f"0-{len(test_ids) - 1}")
    image_id = test_ids[position]
    candidates = [Path(data_dir) / folder / f"{image_id}{PHOTO_SUFFIX}" for folder in DATASET_LABEL_FILES]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ClothVisionError(f"test-split image {image_id} is neither {candidates[0]} nor {candidates[1]}: "
                           "pass the dataset folder with --data-dir")


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Predict the clothes in a photo (figure: Original | Label | Prediction) or in every "
                    "image of a folder (--out-dir: mask, overlay and class-index PNGs).", add_help=add_help)
    parser.add_argument("input", nargs="?", default=None, metavar="INPUT",
                        help="an image file, or a folder of images together with --out-dir (default: none; "
                             "--test-split-image picks one instead)")
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, metavar="FILE",
                        help="checkpoint: a .pt file written by train.py, or an .onnx file written by "
                             "export.py, run in ONNX Runtime (default: %(default)s)")
    parser.add_argument("--label", default=None, metavar="FILE",
                        help="label of the image: a .mat annotation or a PNG painted with the checkpoint's "
                             "palette (default: found automatically for dataset photos, else none)")
    parser.add_argument("--save", default=None, metavar="OUT.png",
                        help="write the figure there (.png, .pdf, .svg, ...) instead of showing it "
                             "(default: show it when a display exists)")
    parser.add_argument("--out-dir", default=None, metavar="DIR",
                        help="write <name>_mask.png, <name>_overlay.png and <name>_classes.png for the "
                             "image, or for every image of the folder, into DIR, skipping files that are "
                             "not images (default: none, draw the figure)")
    parser.add_argument("--device", default="auto", metavar="DEVICE",
                        help=f"device to run the model on: {', '.join(DEVICE_CHOICES)} or cuda:N; an .onnx "
                             "checkpoint runs on the CPU (default: %(default)s)")
    parser.add_argument("--precision", default="auto", choices=PRECISION_CHOICES,
                        help="auto: bf16 autocast + channels_last on CUDA and on CPUs with native bf16, float32 "
                             "elsewhere; an .onnx checkpoint runs in float32 (default: %(default)s)")
    parser.add_argument("--test-split-image", type=int, default=None, metavar="K",
                        help="predict the K-th photo (0-based) of the checkpoint's test split, found under "
                             "--data-dir, instead of INPUT (default: none)")
    parser.add_argument("--data-dir", default="data", metavar="DIR",
                        help="dataset folder that --test-split-image looks in (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = get_args_parser()
    args = parser.parse_args(argv)
    if (args.input is None) == (args.test_split_image is None):
        parser.error("give either an image (or folder) or --test-split-image K")
    # Loaded once, for --test-split-image's ids and the prediction alike.
    predictor = SegmentationPredictor(args.checkpoint, args.device, args.precision)
    image_path = Path(args.input) if args.input is not None else test_split_image(
        predictor, args.test_split_image, args.data_dir)
    if args.out_dir is None:
        if image_path.is_dir():
            raise ClothVisionError(f"{image_path} is a folder: add --out-dir DIR to write a mask, an overlay "
                                   "and a class-index PNG for each of its images")
        test_with_image(image_path, predictor, args.label, show=False if args.save else None,
                        save_to=args.save)
        if args.save:
            print(f"Saved the figure to {args.save}")
        return
    if args.label is not None or args.save is not None:
        raise ClothVisionError("--label and --save belong to the figure of one image: "
                               "leave out --out-dir to use them")
    if image_path.is_dir():
        report = predict_folder(image_path, args.out_dir, predictor)
    else:
        report = predict_files([image_path], args.out_dir, predictor)
        if report.skipped:  # skipping suits a folder; the one file asked for must be an image
            raise report.skipped[0][1]
    print(report.summary(args.out_dir))


if __name__ == "__main__":
    sys.exit(run_cli(main))
