"""Segment clothes in photos with a trained checkpoint: a figure for one photo, PNG files for a folder;
describe what people wear and find the photos that match a description.

    python img_test.py data/photos/0001.jpg --checkpoint results/unet.pt --save prediction.png
    python img_test.py my_photos/ --out-dir predictions/ --checkpoint results/unet.pt
    python img_test.py my_photos/ --describe --json descriptions.jsonl --checkpoint results/unet.pt
    python img_test.py ccp-tags/photos/ --describe --score-tags --tag-report tags.json --checkpoint results/unet.pt
    python img_test.py descriptions.jsonl --find "grey coat, red shoes" --save matches.png
    python img_test.py photo.jpg --checkpoint results/mobilenetv3.onnx    # ONNX Runtime (export.py)

Everything inference needs (model, class names, palette, image size, normalisation) comes from the
checkpoint, a .pt file of train.py or an .onnx file of export.py; no cache or dataset is needed. From Python:

    from img_test import test_with_image
    prediction, predicted_classes = test_with_image("photo.jpg", checkpoint="results/unet.pt")
"""

import math
import sys
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from PIL import Image
from tqdm import tqdm

from evaluation.test_time_augmentation import DEFAULT_TTA
from helpers.errors import ClothVisionError, run_cli
from helpers.figures import display_available, figure_format, finish_figure, new_figure
from helpers.image_io import UnreadableImageError, write_png
from helpers.output_paths import check_output_file
from inference.attire import (
    DEFAULT_MINIMUM_SHARE,
    PhotoDescription,
    PredictionSource,
    describe_photo,
    files_in,
    no_readable_image_error,
    skipped_summary,
    write_descriptions,
)
from inference.attire_commands import Sources, run_describe, run_find
from inference.command_line import (
    check_arguments,
    check_output_paths,
    default_checkpoint,
    default_figure_path,
    get_args_parser,
)
from inference.dataset_labels import DATASET_LABEL_FILES, find_dataset_label, read_label, recorded_dataset_folder
from inference.predictor import SegmentationPredictor
from label_decoder import LabelDecoder

PHOTO_SUFFIX = ".jpg"
DESCRIPTIONS_FILE = "descriptions.jsonl"
DESCRIPTION_CHARACTERS_PER_INCH = 15
OUTPUT_KINDS = ("mask", "overlay", "classes")
PANEL_WIDTH_INCHES = 3.6
LEGEND_ENTRY_WIDTH_INCHES = 1.3
LEGEND_ROW_HEIGHT_INCHES = 0.22
DESCRIPTION_LINE_HEIGHT_INCHES = 0.2
TITLES_HEIGHT_INCHES = 0.6


def predictor_for(checkpoint: str | Path | SegmentationPredictor | None, device: str, precision: str,
                  tta: str = DEFAULT_TTA) -> SegmentationPredictor:
    """The predictor given (with its own device, precision and tta), or one loaded from the checkpoint file
    (None: the default checkpoint)."""
    if isinstance(checkpoint, SegmentationPredictor):
        return checkpoint
    return SegmentationPredictor(checkpoint or default_checkpoint(), device, precision, tta)


def draw_prediction_figure(image: Image.Image, label: np.ndarray | None, prediction: np.ndarray,
                           decoder: LabelDecoder, title: str, show: bool, description: str = "") -> Figure:
    """Original | Label (when known) | Prediction with the description of what is worn under it, above a
    legend of the colours of the classes shown."""
    decoder = decoder.for_figures()
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
    description = textwrap.fill(description, int(PANEL_WIDTH_INCHES * DESCRIPTION_CHARACTERS_PER_INCH))
    description_lines = description.count("\n") + 1 if description else 0
    figure_height = (panel_height + TITLES_HEIGHT_INCHES + LEGEND_ROW_HEIGHT_INCHES * legend_rows
                     + DESCRIPTION_LINE_HEIGHT_INCHES * description_lines)
    figure = new_figure(show, figsize=(figure_width, figure_height), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axis, (panel_title, pixels) in zip(axes, panels, strict=True):
        axis.imshow(pixels)
        axis.set_title(panel_title)
        axis.set_xticks([])
        axis.set_yticks([])
        axis.set_frame_on(False)
    axes[-1].set_xlabel(description, fontsize="small")
    palette, names = np.asarray(decoder.palette) / 255.0, decoder.class_names
    legend_entries = [Patch(facecolor=palette[index], edgecolor="0.5", label=names[index])
                      for index in shown_classes]
    figure.legend(handles=legend_entries, loc="outside lower center", ncols=legend_columns, frameon=False,
                  fontsize="small", handlelength=1.2, columnspacing=1.0)
    figure.suptitle(title)
    return figure


def test_with_image(image_file: str | Path, checkpoint: str | Path | SegmentationPredictor | None = None,
                    label_file: str | Path | None = None, show: bool | None = None,
                    save_to: str | Path | None = None, device: str = "auto", precision: str = "auto",
                    tta: str = DEFAULT_TTA, min_share: float = DEFAULT_MINIMUM_SHARE) -> tuple[np.ndarray, list[str]]:
    """Predict the clothes in one photo and draw Original | Label | Prediction.

    Returns (prediction, predicted_classes): an HxW uint8 class-index map at the photo's own size and
    the names of the classes in it, in class-index order. The label is label_file, or for a dataset
    photo (…/photos/NNNN.jpg, …/images/NNNN.jpg) the annotation beside it. Prints the classes and the
    description of what is worn, which the figure shows under the prediction. show=None shows the figure
    only where a display exists; save_to writes it (.png, .pdf, .svg, ...). checkpoint is a .pt file, an
    .onnx file (run in ONNX Runtime, on the CPU in float32) or a SegmentationPredictor already loaded; None
    is results/unet.pt, what train.py writes by default, or else the only checkpoint in results/.
    tta 'flip' averages the scores of the photo and of its mirror image; device, precision and tta apply
    to a checkpoint file, a SegmentationPredictor keeps its own. min_share: predicted garments under this
    share of the person's pixels are left out of the description.
    """
    if save_to is not None:
        figure_format(save_to)
    predictor = predictor_for(checkpoint, device, precision, tta)
    described = describe_photo(image_file, PredictionSource(predictor, min_share))
    image, prediction, decoder = described.image, described.class_map, predictor.decoder
    label_file = label_file if label_file is not None else find_dataset_label(image_file)
    label = None if label_file is None else read_label(label_file, decoder, image_file, image.size)
    predicted_classes = decoder.classes_in(prediction)
    if label is not None:
        print(f"Real classes: {decoder.classes_in(label)}")
    print(f"Predicted classes: {predicted_classes}")
    print(f"Description: {described.description.text()}")
    show = display_available() if show is None else show
    if show or save_to is not None:
        title = f"{Path(image_file).name}: {predictor.model_name} ({predictor.checkpoint_path.name})"
        figure = draw_prediction_figure(image, label, prediction, decoder, title, show,
                                        described.description.text())
        finish_figure(figure, show, save_to)
    return prediction, predicted_classes


# The name follows the original project's API; this tells pytest it is not a test when a test imports it.
test_with_image.__test__ = False


@dataclass
class PredictionReport:
    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, UnreadableImageError]] = field(default_factory=list)
    descriptions: list[PhotoDescription] = field(default_factory=list)

    def summary(self, out_dir: str | Path) -> str:
        images = len(self.descriptions)
        lines = [f"Wrote a mask, an overlay and a class-index PNG for {images} images to {out_dir}, and their "
                 f"descriptions to {Path(out_dir) / DESCRIPTIONS_FILE}"]
        if self.skipped:
            lines.append(skipped_summary(self.skipped))
        return "\n".join(lines)


def output_stems(image_files: list[Path]) -> list[str]:
    """Output names follow each photo's stem; photos sharing a stem (a.jpg, a.png) keep their full name."""
    stem_counts = Counter(path.stem for path in image_files)
    return [path.stem if stem_counts[path.stem] == 1 else path.name for path in image_files]


def write_prediction_pngs(out_dir: Path, stem: str, image: Image.Image, prediction: np.ndarray,
                          decoder: LabelDecoder) -> list[Path]:
    """<stem>_mask.png (class colours), <stem>_overlay.png (photo under the colours; the background
    class left as photographed) and <stem>_classes.png (class indices, 8-bit grey)."""
    pictures = {"mask": decoder.decode(prediction), "overlay": decoder.overlay(image, prediction),
                "classes": prediction}
    return [write_png(out_dir / f"{stem}_{kind}.png", pictures[kind]) for kind in OUTPUT_KINDS]


def predict_files(image_files: list[Path], out_dir: str | Path, predictor: SegmentationPredictor,
                  min_share: float = DEFAULT_MINIMUM_SHARE) -> PredictionReport:
    """Write the three PNGs of every readable image into out_dir, and all their descriptions into
    out_dir/descriptions.jsonl; unreadable files are skipped, not fatal."""
    out_dir = Path(out_dir)
    report = PredictionReport()
    source = PredictionSource(predictor, min_share)
    for image_file, stem in zip(tqdm(image_files, desc="Predicting", unit="image"), output_stems(image_files),
                                strict=True):
        try:
            described = describe_photo(image_file, source)
        except UnreadableImageError as error:
            report.skipped.append((image_file, error))
            continue
        report.written += write_prediction_pngs(out_dir, stem, described.image, described.class_map,
                                                predictor.decoder)
        report.descriptions.append(described.description)
    if report.descriptions:
        report.written.append(write_descriptions(out_dir / DESCRIPTIONS_FILE, report.descriptions))
    return report


def predict_folder(folder: str | Path, out_dir: str | Path,
                   checkpoint: str | Path | SegmentationPredictor | None = None, device: str = "auto",
                   precision: str = "auto", tta: str = DEFAULT_TTA,
                   min_share: float = DEFAULT_MINIMUM_SHARE) -> PredictionReport:
    """Predict every file directly in folder (hidden files and subfolders aside) into out_dir."""
    folder = Path(folder)
    report = predict_files(files_in(folder), out_dir, predictor_for(checkpoint, device, precision, tta), min_share)
    if not report.written:
        raise no_readable_image_error(folder, report.skipped)
    return report


def test_split_image(checkpoint: str | Path | SegmentationPredictor | None, position: int,
                     data_dir: str | Path | None = None) -> Path:
    """The position-th photo (0-based) of the test split the checkpoint was trained with, under data_dir
    (None: the dataset folder its cache was made from, else data)."""
    # Read on the CPU: only the checkpoint's split is needed here, not an accelerator.
    predictor = predictor_for(checkpoint, "cpu", "auto")
    if data_dir is None:
        data_dir = recorded_dataset_folder(predictor.training_arguments) or "data"
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


def main(argv: list[str] | None = None) -> None:
    parser = get_args_parser()
    args = parser.parse_args(argv)
    check_arguments(parser, args)
    check_output_paths(args)

    # Loaded once, for --test-split-image's ids and the prediction alike, and only when needed:
    # --use-labels and searches of a descriptions file run without a model.
    @cache
    def predictor(checkpoint: str | None = None) -> SegmentationPredictor:
        return predictor_for(checkpoint or args.checkpoint, args.device, args.precision, args.tta)

    image_path = Path(args.input) if args.input is not None else test_split_image(
        args.checkpoint if args.use_labels else predictor(), args.test_split_image, args.data_dir)
    if args.describe or args.find is not None:
        command = run_describe if args.describe else run_find
        command(args, image_path, Sources(args, predictor))
        return
    if args.out_dir is None:
        if image_path.is_dir():
            raise ClothVisionError(f"{image_path} is a folder: add --out-dir DIR to write a mask, an overlay "
                                   "and a class-index PNG for each of its images")
        # Without a display the figure is written, or the first prediction would leave nothing to look at.
        save_to = args.save or (None if display_available() else check_output_file(
            default_figure_path(image_path), "--save"))
        test_with_image(image_path, predictor(), args.label, show=False if save_to else None, save_to=save_to,
                        min_share=args.min_share)
        if args.save:
            print(f"Saved the figure to {args.save}")
        elif save_to:
            print(f"No display to show the figure: saved it to {save_to} (--save FILE writes it elsewhere)")
        return
    if image_path.is_dir():
        report = predict_folder(image_path, args.out_dir, predictor(), min_share=args.min_share)
    else:
        report = predict_files([image_path], args.out_dir, predictor(), args.min_share)
        if report.skipped:  # skipping suits a folder; the one file asked for must be an image
            raise report.skipped[0][1]
    print(report.summary(args.out_dir))


if __name__ == "__main__":
    sys.exit(run_cli(main))
