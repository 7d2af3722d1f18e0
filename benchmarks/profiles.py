"""How much of each benchmark bench.py runs: the full, --quick and --tiny profiles, and the shortcuts each takes."""

import json
from dataclasses import dataclass
from pathlib import Path

from benchmarks.model_rows import ModelSetting
from models import MODEL_NAMES, model_kwargs_for
from preprocess import DEFAULT_SIZE

# A quarter of the pixels of 496×304, for what is too slow on a CPU at full size.
REDUCED_SIZE = (248, 152)
QUICK_TRAINING_SIZE = (160, 96)
TINY_SIZE = (32, 32)
# The CPU study's size and U-net (its width read from the recipe, so the two cannot drift apart): what the
# bf16, deployment, augmentation and recipe goals are about.
CPU_STUDY_SIZE = (240, 144)
CPU_UNET_RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "cpu-unet.json"
CPU_UNET_OPTIONS = json.loads(CPU_UNET_RECIPE.read_text(encoding="utf-8"))
CPU_STUDY_UNET = ModelSetting("unet", CPU_STUDY_SIZE, model_kwargs_for(
    "unet", CPU_UNET_OPTIONS["unet_base_width"], CPU_UNET_OPTIONS.get("unet_stem", "full")))
CPU_STUDY_SETTINGS = {"unet": CPU_STUDY_UNET, "mobilenetv3": ModelSetting("mobilenetv3", CPU_STUDY_SIZE)}
# img_test.py's default checkpoint: the model whose predictions descriptions follow by default.
IMG_TEST_DEFAULT_MODEL = ModelSetting("mobilenetv3", DEFAULT_SIZE)


@dataclass(frozen=True)
class Profile:
    """How much of each benchmark to run, and a note for every shortcut taken."""

    label_images: int
    label_repeats: int
    image_size: tuple[int, int]
    loading_baseline_images: int
    loading_rounds: int
    training_settings: dict[str, ModelSetting]
    training_batch_size: int
    training_steps: int
    training_repeats: int
    inference_settings: dict[str, ModelSetting]
    inference_repeats: int
    precision_settings: dict[str, ModelSetting]
    precision_batch_size: int
    precision_repeats: int
    describe_setting: ModelSetting
    recipe_settings: dict[str, ModelSetting]  # the loss and compile rows (the loss row: its U-net only)
    compile_backend: str
    shortcuts: tuple[tuple[str, str], ...]  # (row group, the shortcut taken there); group "" for every group


def full_profile() -> Profile:
    return Profile(
        label_images=5, label_repeats=2, image_size=DEFAULT_SIZE,
        loading_baseline_images=96, loading_rounds=3,
        training_settings={name: ModelSetting(name, REDUCED_SIZE) for name in MODEL_NAMES},
        training_batch_size=2, training_steps=3, training_repeats=3,
        inference_settings={name: ModelSetting(name, DEFAULT_SIZE) for name in MODEL_NAMES},
        inference_repeats=3,
        precision_settings={"unet": CPU_STUDY_UNET, "mobilenetv3": ModelSetting("mobilenetv3", DEFAULT_SIZE)},
        precision_batch_size=8, precision_repeats=3, describe_setting=IMG_TEST_DEFAULT_MODEL,
        recipe_settings=CPU_STUDY_SETTINGS, compile_backend="inductor",
        shortcuts=(("training", f"training steps at {REDUCED_SIZE[0]}×{REDUCED_SIZE[1]}, batch 2, to fit a CPU"),),
    )


def quick_profile() -> Profile:
    small = QUICK_TRAINING_SIZE
    return Profile(
        label_images=2, label_repeats=1, image_size=DEFAULT_SIZE,
        loading_baseline_images=32, loading_rounds=3,
        training_settings={"unet": ModelSetting("unet", small, {"base_width": 16}),
                           "mobilenetv3": ModelSetting("mobilenetv3", small)},
        training_batch_size=2, training_steps=3, training_repeats=5,
        inference_settings={"unet": ModelSetting("unet", REDUCED_SIZE),
                            "mobilenetv3": ModelSetting("mobilenetv3", DEFAULT_SIZE),
                            "resnet50": ModelSetting("resnet50", REDUCED_SIZE),
                            "resnet101": ModelSetting("resnet101", REDUCED_SIZE)},
        inference_repeats=3,
        precision_settings={"unet": CPU_STUDY_UNET, "mobilenetv3": ModelSetting("mobilenetv3", DEFAULT_SIZE)},
        precision_batch_size=8, precision_repeats=3, describe_setting=IMG_TEST_DEFAULT_MODEL,
        recipe_settings=CPU_STUDY_SETTINGS, compile_backend="inductor",
        shortcuts=(("data", "--quick: label encoding timed on 2 labels, one original call each"),
                   ("data", "--quick: the decode-every-epoch loader reads 32 training images per round"),
                   ("training", f"--quick: training steps of unet (base width 16) and mobilenetv3 only, at "
                                f"{small[0]}×{small[1]}, batch 2"),
                   ("inference", f"--quick: inference of unet, resnet50 and resnet101 at "
                                 f"{REDUCED_SIZE[0]}×{REDUCED_SIZE[1]} (a quarter of the pixels)")),
    )


def tiny_profile() -> Profile:
    """Toy sizes, for testing bench.py itself on a few synthetic images."""
    unet = ModelSetting("unet", TINY_SIZE, {"base_width": 4})
    mobilenet = ModelSetting("mobilenetv3", TINY_SIZE)
    return Profile(
        label_images=2, label_repeats=1, image_size=TINY_SIZE, loading_baseline_images=4, loading_rounds=1,
        training_settings={"unet": unet, "mobilenetv3": mobilenet},
        training_batch_size=2, training_steps=2, training_repeats=1,
        inference_settings={"unet": unet, "mobilenetv3": mobilenet}, inference_repeats=1,
        precision_settings={"unet": unet, "mobilenetv3": mobilenet}, precision_batch_size=2, precision_repeats=1,
        describe_setting=unet, recipe_settings={"unet": unet, "mobilenetv3": mobilenet}, compile_backend="eager",
        shortcuts=(("", "--tiny: toy sizes that test the benchmark itself; the numbers mean nothing"),
                   ("compile", "--tiny: torch.compile with the eager backend (graph capture, no code generation)")),
    )
