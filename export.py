"""Export a checkpoint to a self-contained ONNX file, for ONNX Runtime on machines without PyTorch.

    python export.py results/mobilenetv3.pt                         # -> results/mobilenetv3.onnx
    python export.py results/unet.pt --out deploy/unet.onnx --opset 18

The file maps float32 images N×3×H×W at the checkpoint's image size (N free), normalised with its mean/std,
to logits N×C×H×W, and carries as metadata what inference needs: model name, class names, palette, image
size, mean/std, the split, and the validation and test metrics. img_test.py predicts with it like with the
.pt file (--checkpoint FILE.onnx). Before writing, the export is run once in ONNX Runtime and its logits
are compared with PyTorch's; a file whose logits differ is never written. From Python:

    from export import export_checkpoint
    export_checkpoint("results/mobilenetv3.pt")
"""

import argparse
import json
import sys
from pathlib import Path

import torch

from helpers.atomic_files import atomic_write
from helpers.checkpoint import state_dict_digest
from helpers.errors import ClothVisionError, run_cli
from helpers.output_paths import check_output_file
from inference.backends import OnnxRuntimeBackend, load_torch_checkpoint
from inference.onnx_format import (
    DEFAULT_OPSET,
    EXPORT_PACKAGES,
    EXPORT_REQUIREMENTS,
    MIN_OPSET,
    ONNX_SUFFIX,
    export_to_onnx,
    import_package,
    metadata_of,
)

# The test report's entries that the ONNX file keeps (its confusion matrix stays in the report).
TEST_METRIC_KEYS = ("num_images", "loss", "pixel_accuracy", "mean_accuracy", "miou", "fw_iou", "per_class_iou")
# float32 arithmetic in another order differs by ~1e-7 of the logit range; an export error is far larger.
MAX_LOGIT_DIFFERENCE = 1e-3
VERIFICATION_BATCH = 2


def relative_logit_difference(reference: torch.Tensor, candidate: torch.Tensor) -> float:
    """Largest absolute difference between two logit tensors, as a fraction of the reference's range."""
    logit_range = (reference.max() - reference.min()).clamp(min=torch.finfo(torch.float32).tiny)
    return ((candidate - reference).abs().max() / logit_range).item()


def read_test_metrics(checkpoint_path: Path, checkpoint: dict) -> dict | None:
    """The test metrics of <model>_test.json, which train.py writes beside the best checkpoint, when that
    report is about these very weights (its state_dict_digest); a report about other weights (another run
    into the same folder, or a run stopped before its test evaluation) is left out with a notice."""
    report_path = checkpoint_path.with_name(f"{checkpoint['model_name']}_test.json")
    if not report_path.is_file():
        return None
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ClothVisionError(f"test report {report_path} is not JSON ({error}): delete it or evaluate the "
                               "checkpoint again") from None
    if not isinstance(report, dict) or report.get("state_dict_digest") != state_dict_digest(checkpoint["state_dict"]):
        print(f"Left out the test metrics of {report_path}: they are not about the weights of {checkpoint_path}; "
              "finish the run that wrote them (train.py --resume) to include them")
        return None
    return {key: report[key] for key in TEST_METRIC_KEYS if key in report}


def export_checkpoint(checkpoint_path: str | Path, out_path: str | Path | None = None,
                      opset: int = DEFAULT_OPSET) -> Path:
    """Write checkpoint_path's network and inference metadata to out_path (default: the checkpoint's
    name with .onnx); returns out_path. Verified in ONNX Runtime against PyTorch before it is written."""
    checkpoint_path = Path(checkpoint_path)
    if checkpoint_path.suffix.lower() == ONNX_SUFFIX:
        raise ClothVisionError(f"{checkpoint_path} is already an ONNX file: export.py takes a .pt checkpoint "
                               f"written by train.py (img_test.py --checkpoint runs the {ONNX_SUFFIX} file as it is)")
    for package in EXPORT_PACKAGES:  # all of them before minutes of work, not after
        import_package(package, "export.py")
    out_path = checkpoint_path.with_suffix(ONNX_SUFFIX) if out_path is None else Path(out_path)
    if out_path.suffix.lower() != ONNX_SUFFIX:
        raise ClothVisionError(f"output {out_path} does not end in {ONNX_SUFFIX}: img_test.py recognises ONNX "
                               f"files by that suffix; pass --out NAME{ONNX_SUFFIX}")
    check_output_file(out_path, "--out")
    checkpoint, torch_backend = load_torch_checkpoint(checkpoint_path, "cpu", "fp32")
    test_metrics = read_test_metrics(checkpoint_path, checkpoint)
    image_size = tuple(int(side) for side in checkpoint["image_size"])
    model_bytes = export_to_onnx(torch_backend.model, image_size, opset, metadata_of(checkpoint, test_metrics))
    images = torch.randn(VERIFICATION_BATCH, 3, *image_size, generator=torch.Generator().manual_seed(0))
    difference = relative_logit_difference(torch_backend.logits(images),
                                           OnnxRuntimeBackend(model_bytes).logits(images))
    if difference > MAX_LOGIT_DIFFERENCE:
        raise ClothVisionError(f"the ONNX export of {checkpoint_path} computes logits that differ from PyTorch's "
                               f"by {difference:.1e} of their range (at most {MAX_LOGIT_DIFFERENCE:g} expected), "
                               f"so {out_path} was not written: try another --opset or torch version")
    atomic_write(out_path, lambda temporary: temporary.write_bytes(model_bytes))
    print(f"Exported {checkpoint['model_name']} ({image_size[0]}×{image_size[1]}, opset {opset}"
          f"{', with test metrics' if test_metrics else ''}) to {out_path}; ONNX Runtime's logits are within "
          f"{difference:.1e} of the logit range of PyTorch's")
    return out_path


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Export a checkpoint written by train.py to an ONNX file that img_test.py and ONNX Runtime "
                    f"run; needs the packages of {EXPORT_REQUIREMENTS}.",
        add_help=add_help)
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a .pt checkpoint written by train.py")
    parser.add_argument("--out", default=None, metavar="FILE.onnx",
                        help="the ONNX file to write (default: the checkpoint's path with .onnx)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, metavar="N",
                        help=f"ONNX operator set, {MIN_OPSET} or newer (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = get_args_parser().parse_args(argv)
    export_checkpoint(args.checkpoint, args.out, args.opset)


if __name__ == "__main__":
    sys.exit(run_cli(main))
