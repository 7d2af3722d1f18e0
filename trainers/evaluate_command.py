"""`python train.py --evaluate CHECKPOINT`: score a saved checkpoint on its own val or test split as the test
report does (annotations' own size, 95 % intervals, the training size beside), print it and write the
report JSON. An --out that cannot be written is refused before any scoring; a progress bar follows the split's
batches, as in training (--no-progress hides it). Builds no optimizer and moves only the scored split to the
device."""

from pathlib import Path

from helpers.errors import ClothVisionError
from helpers.output_paths import check_output_file
from trainers.evaluation import evaluate_checkpoint
from trainers.options import TrainingOptions
from trainers.report import describe_report, write_test_report

# The options that mean something to an evaluation; --out names the report file.
EVALUATION_KEYWORDS = ("data", "tta", "precision", "device", "batch_size", "out", "split", "show_plots",
                       "show_progress")


def default_report_path(checkpoint: Path, split: str, tta: str) -> Path:
    """results/unet.pt -> results/unet_evaluate_test_tta-none.json: never the trainer's own unet_test.json."""
    return checkpoint.with_name(f"{checkpoint.stem}_evaluate_{split}_tta-{tta}.json")


def run_evaluate_command(checkpoint: str, given: dict) -> dict:
    unused = sorted(set(given) - set(EVALUATION_KEYWORDS))
    if unused:
        flags = ", ".join("--" + keyword.replace("_", "-") for keyword in unused)
        raise ClothVisionError(
            f"--evaluate scores a checkpoint and trains nothing: {flags} do not apply; drop them, or drop --evaluate "
            "to train"
        )
    defaults = TrainingOptions()
    split, tta = given.get("split", "test"), given.get("tta", defaults.tta)
    out = Path(given["out"]) if "out" in given else default_report_path(Path(checkpoint), split, tta)
    if out.is_dir():
        raise ClothVisionError(f"--out {out} is a folder: with --evaluate, --out names the report's .json file")
    check_output_file(out, "--out")  # before the minutes of scoring, not at the first write after them
    report = evaluate_checkpoint(
        checkpoint,
        given.get("data", defaults.data),
        split,
        device=given.get("device", defaults.device),
        batch_size=given.get("batch_size", defaults.batch_size),
        precision=given.get("precision", defaults.precision),
        tta=tta,
        show_progress=given.get("show_progress", defaults.show_progress),
    )
    image_ids, image_confusion = report.pop("image_ids"), report.pop("image_confusion")
    write_test_report(report, image_ids, image_confusion, out)
    print(f"{report['model_name']} {split} ({checkpoint}): {describe_report(report)}")
    groups = report["garment_groups"]["per_group_iou"]
    print("garment-group IoU: " + ", ".join(
        f"{group} {100 * iou:.1f} %" for group, iou in groups.items() if iou is not None))
    print(f"wrote {out}")
    return report
