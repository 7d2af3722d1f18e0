"""Every bad input to img_test.py ends in one 'error: ...' line and exit code 2, never a traceback;
a checkpoint that needs arbitrary unpickling is refused without running any of its code."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoint_factory import tiny_unet, write_tiny_checkpoint
from PIL import Image

import img_test
from helpers.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION
from helpers.errors import run_cli

REPO_ROOT = Path(__file__).resolve().parent.parent


class WritesMarkerWhenUnpickled:
    """Unpickling this calls open(marker, 'w'): the marker file exists only if the code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


class RunsShellWhenUnpickled(WritesMarkerWhenUnpickled):
    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def write_malicious_torch_checkpoint(path: Path, marker: Path) -> Path:
    """Our format keys around a payload, saved with torch.save (a zip holding the pickle)."""
    torch.save({"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
                "state_dict": RunsShellWhenUnpickled(marker)}, path)
    return path


def write_malicious_pickle(path: Path, marker: Path) -> Path:
    """A bare pickle (torch's legacy format) whose loading would open a file."""
    with open(path, "wb") as handle:
        pickle.dump({"format": CHECKPOINT_FORMAT, "payload": WritesMarkerWhenUnpickled(marker)}, handle,
                    protocol=2)
    return path


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    """A good photo and checkpoint, and every bad input, in one folder shared by the tests below."""
    folder = tmp_path_factory.mktemp("bad-inputs")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(
        folder / "photo.jpg", quality=90)
    paths = {"photo": folder / "photo.jpg", "checkpoint": write_tiny_checkpoint(folder / "good.pt"),
             "marker": folder / "code-ran", "folder": folder}
    (folder / "notes.jpg").write_text("this is a shopping list, not a photo")
    (folder / "truncated.jpg").write_bytes(paths["photo"].read_bytes()[:300])
    (folder / "empty.png").write_bytes(b"")
    (folder / "no-images").mkdir()
    (folder / "no-images" / "readme.txt").write_text("nothing to see")
    (folder / "empty-folder").mkdir()
    torch.save(tiny_unet().state_dict(), folder / "state_dict.pt")
    torch.save({"model_name": "unet", "model_kwargs": {"base_width": 4},
                "state_dict": tiny_unet().state_dict()}, folder / "no_format_key.pt")
    (folder / "text.pt").write_text("not a checkpoint\n" * 20)
    (folder / "truncated.pt").write_bytes(paths["checkpoint"].read_bytes()[:5000])
    checkpoint = torch.load(paths["checkpoint"], weights_only=True)
    del checkpoint["class_names"]
    torch.save(checkpoint, folder / "no_classes.pt")
    write_tiny_checkpoint(folder / "wider.pt", model_kwargs={"base_width": 8})
    write_tiny_checkpoint(folder / "unknown_model.pt", model_name="segformer")
    write_malicious_torch_checkpoint(folder / "malicious.pt", paths["marker"])
    write_malicious_pickle(folder / "malicious.pkl", paths["marker"])
    Image.new("RGB", (30, 40), (1, 2, 3)).save(folder / "off_palette.png")
    return paths


# Each case: command-line arguments ({tmp} = the gallery folder, {photo} = a good photo, {good} = a good
# checkpoint) and a fragment that its one error line must contain.
CASES = {
    "missing image": ("{tmp}/nope.jpg --checkpoint {good}", "nope.jpg not found"),
    "not an image": ("{tmp}/notes.jpg --checkpoint {good}", "notes.jpg is not an image file"),
    "truncated image": ("{tmp}/truncated.jpg --checkpoint {good}", "corrupt or truncated"),
    "empty image file": ("{tmp}/empty.png --checkpoint {good}", "empty.png is not an image file"),
    "folder without --out-dir": ("{tmp}/no-images --checkpoint {good}", "is a folder: add --out-dir"),
    "folder without images": ("{tmp}/no-images --out-dir {tmp}/out --checkpoint {good}",
                              "holds no readable image (1 files skipped, e.g. readme.txt: not an image)"),
    "empty folder": ("{tmp}/empty-folder --out-dir {tmp}/out --checkpoint {good}", "holds no files"),
    "missing checkpoint": ("{photo} --checkpoint {tmp}/results/unet.pt", "unet.pt not found: train one"),
    "plain state dict": ("{photo} --checkpoint {tmp}/state_dict.pt", "is not a ClothVision checkpoint"),
    "dict without format key": ("{photo} --checkpoint {tmp}/no_format_key.pt",
                                "no_format_key.pt is not a ClothVision checkpoint"),
    "text as checkpoint": ("{photo} --checkpoint {tmp}/text.pt", "text.pt cannot be read"),
    "photo as checkpoint": ("{photo} --checkpoint {photo}", "photo.jpg cannot be read"),
    "truncated checkpoint": ("{photo} --checkpoint {tmp}/truncated.pt", "truncated.pt cannot be read"),
    "checkpoint without class names": ("{photo} --checkpoint {tmp}/no_classes.pt", "lacks class_names"),
    "weights of another model": ("{photo} --checkpoint {tmp}/wider.pt", "weights do not fit a 'unet' model"),
    "unknown model": ("{photo} --checkpoint {tmp}/unknown_model.pt", "unknown model 'segformer'"),
    "malicious torch checkpoint": ("{photo} --checkpoint {tmp}/malicious.pt", "malicious.pt was refused"),
    "malicious bare pickle": ("{photo} --checkpoint {tmp}/malicious.pkl", "malicious.pkl was refused"),
    "missing label": ("{photo} --checkpoint {good} --label {tmp}/nope.mat", "label {tmp}/nope.mat not found"),
    "off-palette label": ("{photo} --checkpoint {good} --label {tmp}/off_palette.png",
                          "colour (1, 2, 3) on 1200 pixels is not in the palette"),
    "figure format": ("{photo} --checkpoint {good} --save {tmp}/figure.xyz", "cannot save a figure"),
    "test split index": ("--test-split-image 9 --checkpoint {good}", "has 2 images, numbered 0-1"),
    "unknown device": ("{photo} --checkpoint {good} --device tpu", "unknown device 'tpu'"),
    "label with --out-dir": ("{photo} --checkpoint {good} --out-dir {tmp}/out --label {tmp}/x.mat",
                             "--label and --save belong to the figure of one image"),
}
# Every case runs in-process through run_cli, exactly as `python img_test.py` runs main; as each real
# process pays seconds for importing torch on a shared machine, only the most dangerous one also runs
# as a process of its own.
SUBPROCESS_CASES = ("malicious torch checkpoint",)


def arguments(case: str, gallery: dict) -> tuple[list[str], str]:
    """The command-line arguments of a case (paths filled in) and the fragment its error must contain."""
    template, fragment = CASES[case]
    names = {"tmp": gallery["folder"], "photo": gallery["photo"], "good": gallery["checkpoint"]}
    return template.format(**names).split(), fragment.format(**names)


def assert_one_error_line(stderr: str, fragment: str) -> None:
    assert "Traceback" not in stderr
    # A folder's progress bar may precede the error; the error itself is the last line, and alone.
    lines = [line for line in stderr.splitlines()
             if line.strip() and not line.startswith(("Predicting", "Describing"))]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]


# A UserWarning would reach the user's terminal as extra lines: make it fail the test.
@pytest.mark.filterwarnings("error::UserWarning")
@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_error_line_and_exit_code_2(case, gallery, capsys):
    argv, fragment = arguments(case, gallery)
    assert run_cli(img_test.main, argv) == 2
    assert_one_error_line(capsys.readouterr().err, fragment)
    assert not gallery["marker"].exists()


def test_bad_input_fails_the_same_way_in_a_real_process(gallery):
    environment = {**os.environ, "MPLBACKEND": "Agg"}
    commands = {case: arguments(case, gallery) for case in SUBPROCESS_CASES}
    processes = {case: subprocess.Popen([sys.executable, str(REPO_ROOT / "img_test.py"), *argv],
                                        cwd=gallery["folder"], env=environment, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for case, (argv, _) in commands.items()}
    for case, process in processes.items():
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 2, (case, stderr)
        assert_one_error_line(stderr, commands[case][1])
        assert stdout == ""
    assert not gallery["marker"].exists()


def test_refusal_names_the_forbidden_call(gallery, capsys):
    assert run_cli(img_test.main, arguments("malicious torch checkpoint", gallery)[0]) == 2
    assert "GLOBAL posix.system" in capsys.readouterr().err
    assert not gallery["marker"].exists()
