"""Speed of the pipeline against the original project's methods, measured side by side in one run.

    python bench.py [--quick] [--data DIR] [--kaggle-data DIR] [--device auto|cpu|cuda] [--models NAME ...]
                    [--rows GROUP ...] [--trained-checkpoint FILE] [--output FILE]

Prints one Markdown table:
  1. label encoding     the original per-pixel apply_along_axis one-hot encoder vs LabelEncoder.encode
  2. preprocessing      preprocess.py on every image of --data at 496×304, into a temporary folder
  3. data loading       a decode-every-epoch loader (as the original dataset class) vs the cache loaders
  4. training step      a trainer's step vs a bare forward/backward/Adam step of the same model
  5. inference latency  per model, batch of one, on the CPU and on CUDA when --device is cuda
  6. CPU precision      per model (U-net, MobileNetV3): training step and inference, float32 vs bf16
  7. augmentation       a DeviceBatchLoader batch with --augment full vs a U-net training step
  8. describe garments  img_test's prediction of the first dataset photo at its own size, alone and followed
                        by the description of the garments of its label (shares and colours)
  9. CPU deployment     per model (U-net, MobileNetV3): inference in PyTorch float32 vs PyTorch at the CPU
                        precision and vs the model exported to ONNX, in ONNX Runtime (needs requirements-export.txt)
  10. flip TTA         per model (U-net, MobileNetV3): inference with flip test-time augmentation vs without
  11. training loss     a U-net training step with cross-entropy + soft-Jaccard vs cross-entropy alone
  12. CPU compile       per model (U-net, MobileNetV3): a training step compiled with torch.compile vs eager,
                        the first (compiling) step timed apart
  13. denormal numbers  with --trained-checkpoint: its inference vs the same model freshly initialised

Contenders of a row run alternately in the same process, after a warm-up, and report medians of
time.perf_counter() (with torch.cuda.synchronize() around CUDA work), so they share the machine's noise.
--quick shrinks what is slow (fewer baseline images, smaller models and sizes) and says so under the table.
--tiny (hidden from --help) shrinks everything to toy sizes; the test suite uses it on synthetic data.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.data_rows import (
    measure_data_loading,
    measure_label_encoding,
    measure_preprocessing,
    read_colour_labels,
)
from benchmarks.deployment_rows import measure_deployment
from benchmarks.describe_rows import measure_description_cost
from benchmarks.model_rows import ModelSetting, measure_inference, measure_training_steps
from benchmarks.precision_rows import measure_augmentation_cost, measure_denormal_effect, measure_precision_speedups
from benchmarks.profiles import Profile, full_profile, quick_profile, tiny_profile
from benchmarks.recipe_rows import measure_compile_speedup, measure_loss_cost
from benchmarks.step_overhead import NUM_CLASSES
from benchmarks.table import Row, markdown_table
from benchmarks.tta_rows import measure_flip_cost
from dataset import load_cache
from helpers.atomic_files import atomic_write_text
from helpers.dataset_layouts import find_dataset
from helpers.devices import PRECISION_CHOICES, resolve_device
from helpers.errors import run_cli
from label_encoder import LabelEncoder
from models import MODEL_NAMES
from preprocess import IMAGENET_MEAN, IMAGENET_STD


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Benchmark the pipeline against the original methods.", add_help=add_help)
    parser.add_argument("--quick", action="store_true",
                        help="a run of a few minutes on 2 cores: fewer baseline images, smaller models "
                             "and sizes (default: off, the full run)")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, default=Path("data"),
                        help="dataset folder (original CCP or Kaggle layout), as preprocess.py reads it "
                             "(default: %(default)s)")
    parser.add_argument("--kaggle-data", type=Path, default=None,
                        help="Kaggle-layout folder whose colour label PNGs the label-encoding row reads "
                             "(default: those of --data in that layout, else --data's .mat labels painted "
                             "with the class palette)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="device of the loaders and training steps; inference runs on the CPU, and on "
                             "CUDA too when this is cuda (default: %(default)s)")
    parser.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=list(MODEL_NAMES),
                        help="models of the training-step and inference rows; --quick trains only unet and "
                             "mobilenetv3 (default: all)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="folder for the temporary caches (default: the system's temporary folder)")
    parser.add_argument("--trained-checkpoint", type=Path, default=None,
                        help="a checkpoint written by train.py: adds the denormal-numbers rows, its float32 "
                             "inference against the same model freshly initialised (default: none)")
    parser.add_argument("--precision", default="auto", choices=PRECISION_CHOICES,
                        help="arithmetic of the training-step and inference-latency rows: auto (bf16 autocast + "
                             "channels_last on CUDA and on CPUs with native bf16, else float32), bf16 or fp32; "
                             "the CPU precision rows always compare both (default: %(default)s)")
    parser.add_argument("--rows", nargs="+", choices=tuple(ROW_GROUPS), default=list(ROW_GROUPS),
                        help="row groups to measure: data (label encoding, preprocessing, loading), training, "
                             "inference, precision, augmentation, describe, deployment, tta, loss, compile, "
                             "denormal (needs --trained-checkpoint) "
                             "(default: all)")
    parser.add_argument("--output", type=Path, default=None,
                        help="also write the table to this Markdown file (default: print it only)")
    return parser


def progress(message: str) -> None:
    """The table goes to stdout; what is being measured meanwhile goes to stderr."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def data_rows(args: argparse.Namespace, profile: Profile, device: torch.device) -> list[Row]:
    """Label encoding, preprocessing and data loading: they share the cache preprocessing writes."""
    progress("label encoding (the original method takes seconds per label)")
    label_row, original_seconds_per_label = measure_label_encoding(
        read_colour_labels(args.data, args.kaggle_data, profile.label_images), profile.label_repeats)
    rows = [label_row]
    with tempfile.TemporaryDirectory(prefix="clothvision-bench-", dir=args.work_dir) as work_dir:
        progress(f"preprocessing {args.data} at {profile.image_size[0]}x{profile.image_size[1]}")
        cache_dir = Path(work_dir) / "processed"
        rows.append(measure_preprocessing(args.data, cache_dir, profile.image_size,
                                          original_seconds_per_label))
        progress("data loading")
        rows += measure_data_loading(args.data, load_cache(cache_dir), device, profile.loading_baseline_images,
                                     profile.loading_rounds)
    return rows


def training_rows(args: argparse.Namespace, profile: Profile, device: torch.device) -> list[Row]:
    progress("training steps")
    return measure_training_steps(selected(profile.training_settings, args.models), device,
                                  profile.training_batch_size, profile.training_steps, profile.training_repeats,
                                  args.precision)


def inference_rows(args: argparse.Namespace, profile: Profile, device: torch.device) -> list[Row]:
    progress("inference latency")
    inference_devices = [torch.device("cpu")] + ([device] if device.type == "cuda" else [])
    return measure_inference(selected(profile.inference_settings, args.models), NUM_CLASSES, inference_devices,
                             profile.inference_repeats, args.precision)


def precision_rows(args: argparse.Namespace, profile: Profile, device: torch.device) -> list[Row]:
    progress("CPU precision: float32 against bf16")
    return measure_precision_speedups(selected(profile.precision_settings, args.models),
                                      profile.precision_batch_size, profile.precision_repeats)


def augmentation_rows(args: argparse.Namespace, profile: Profile, device: torch.device) -> list[Row]:
    progress("augmenting loader against a training step")
    return [measure_augmentation_cost(profile.precision_settings["unet"], profile.precision_batch_size,
                                      profile.precision_repeats)]


def describe_rows(args: argparse.Namespace, profile: Profile, device: torch.device) -> list[Row]:
    progress("describing garments against predicting a photo")
    dataset = find_dataset(args.data)
    encoder = LabelEncoder.from_class_file(dataset.class_file)
    meta = {"class_names": encoder.class_names, "palette": encoder.palette,
            "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    return [measure_description_cost(profile.describe_setting, args.trained_checkpoint, meta, dataset,
                                     profile.inference_repeats, args.work_dir)]


def deployment_rows(args: argparse.Namespace, profile: Profile, device: torch.device) -> list[Row]:
    progress("CPU deployment: PyTorch float32, PyTorch at the CPU precision, ONNX Runtime")
    # The models and sizes of the precision rows: the study's U-net and MobileNetV3 at 496×304.
    return measure_deployment(selected(profile.precision_settings, args.models), profile.precision_repeats)


def tta_rows(args: argparse.Namespace, profile: Profile, device: torch.device) -> list[Row]:
    progress("flip test-time augmentation against none")
    return measure_flip_cost(selected(profile.precision_settings, args.models), profile.precision_repeats)


def loss_rows(args: argparse.Namespace, profile: Profile, device: torch.device) -> list[Row]:
    progress("training loss: cross-entropy against cross-entropy + soft-Jaccard")
    return [measure_loss_cost(profile.recipe_settings["unet"], profile.precision_batch_size,
                              profile.precision_repeats)]


def compile_rows(args: argparse.Namespace, profile: Profile, device: torch.device) -> list[Row]:
    progress(f"CPU compile: torch.compile ({profile.compile_backend}) against eager training steps")
    return measure_compile_speedup(selected(profile.recipe_settings, args.models), profile.precision_batch_size,
                                   profile.precision_repeats, profile.compile_backend)


def denormal_rows(args: argparse.Namespace, profile: Profile, device: torch.device) -> list[Row]:
    if args.trained_checkpoint is None:
        return []
    progress(f"denormal numbers in {args.trained_checkpoint}")
    return measure_denormal_effect(args.trained_checkpoint, profile.precision_repeats)


# Each group's rows, in the table's order.
ROW_GROUPS = {"data": data_rows, "training": training_rows, "inference": inference_rows,
              "precision": precision_rows, "augmentation": augmentation_rows, "describe": describe_rows,
              "deployment": deployment_rows, "tta": tta_rows, "loss": loss_rows, "compile": compile_rows,
              "denormal": denormal_rows}


def run_benchmarks(args: argparse.Namespace, profile: Profile) -> str:
    """The chosen groups' rows, measured in this process; returns the Markdown table and its notes."""
    device = resolve_device(args.device)
    rows = [row for group in args.rows for row in ROW_GROUPS[group](args, profile, device)]
    hardware = f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
    if device.type == "cuda":
        hardware += f", {torch.cuda.get_device_name(device)}"
    notes = [hardware, *(note for group, note in profile.shortcuts if group in ("", *args.rows))]
    return markdown_table(rows) + "\n\n" + "\n".join(f"- {note}" for note in notes) + "\n"


def selected(settings: dict[str, ModelSetting], model_names: list[str]) -> list[ModelSetting]:
    return [settings[name] for name in model_names if name in settings]


def main(argv: list[str] | None = None) -> str:
    args = get_args_parser().parse_args(argv)
    profile = tiny_profile() if args.tiny else quick_profile() if args.quick else full_profile()
    table = run_benchmarks(args, profile)
    print(table)
    if args.output is not None:
        atomic_write_text(args.output, table)
    return table


if __name__ == "__main__":
    sys.exit(run_cli(main))
