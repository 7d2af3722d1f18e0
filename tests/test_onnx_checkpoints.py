"""ONNX files as checkpoints: export.py's metadata reads back as the .pt's entries, img_test.py predicts and
writes the same with an .onnx file as with its .pt, and every bad input or missing package is one error line."""

import json
import sys

import numpy as np
import pytest
import torch
from checkpoint_factory import (
    TINY_UNET_KWARGS,
    fitted_tiny_unet,
    tiny_unet,
    write_model_checkpoint,
    write_tiny_checkpoint,
)
from PIL import Image
from synthetic_ccp import write_ccp_layout

import export
import img_test
from helpers.checkpoint import load_checkpoint, state_dict_digest
from helpers.errors import ClothVisionError, run_cli
from helpers.image_io import read_rgb_image
from inference.onnx_format import EXPORT_PACKAGES, export_to_onnx
from inference.predictor import SegmentationPredictor
from label_encoder import read_groundtruth_mat

pytestmark = pytest.mark.usefixtures("one_torch_thread")
IMAGE_SIZE = (32, 24)
VAL_METRICS = {"loss": 1.5, "miou": 0.25}
TEST_REPORT = {"num_images": 2, "miou": 0.125, "pixel_accuracy": 0.75}


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory):
    """Six synthetic photos in the original layout, shared by the tests of this file (they only read them)."""
    return write_ccp_layout(tmp_path_factory.mktemp("data") / "ccp")


@pytest.fixture(scope="module")
def checkpoints(synthetic_data, tmp_path_factory, onnx_packages):
    """A tiny U-net fitted to the synthetic photos, as train.py saves it (with validation metrics and the
    test report beside it), and its export. Fitted, so that its scores are decisive: an untrained network's
    near-ties would let float32 rounding flip pixels between the two back ends."""
    folder = tmp_path_factory.mktemp("checkpoints")
    photos = [read_rgb_image(path) for path in sorted((synthetic_data / "photos").iterdir())]
    label_files = sorted((synthetic_data / "annotations" / "pixel-level").iterdir())
    labels = [read_groundtruth_mat(path, 59) for path in label_files]
    checkpoint = write_model_checkpoint(
        folder / "unet.pt", "unet", fitted_tiny_unet(photos, labels, IMAGE_SIZE), TINY_UNET_KWARGS, IMAGE_SIZE,
        metrics={**VAL_METRICS, "confusion_matrix": torch.eye(59, dtype=torch.int64), "per_class_iou": [0.5]})
    digest = state_dict_digest(load_checkpoint(checkpoint)["state_dict"])
    report = {"checkpoint": str(checkpoint), "state_dict_digest": digest, **TEST_REPORT, "confusion_matrix": [[1]]}
    (folder / "unet_test.json").write_text(json.dumps(report), encoding="utf-8")
    return checkpoint, export.export_checkpoint(checkpoint)


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def test_metadata_reads_back_as_the_checkpoints_entries(checkpoints):
    import onnx

    checkpoint_path, onnx_file = checkpoints
    checkpoint = load_checkpoint(checkpoint_path)
    model = onnx.load(onnx_file)
    metadata = {entry.key: json.loads(entry.value) for entry in model.metadata_props}
    for key in ("model_name", "model_kwargs", "class_names", "palette", "image_size", "mean", "std", "split_ids"):
        assert metadata[key] == checkpoint[key], key
    assert metadata["val_metrics"] == VAL_METRICS  # the numbers only: no confusion matrix, no per-class list
    assert metadata["test_metrics"] == TEST_REPORT
    shapes = [[dimension.dim_param or dimension.dim_value for dimension in value.type.tensor_type.shape.dim]
              for value in (model.graph.input[0], model.graph.output[0])]
    batch = shapes[0][0]
    assert isinstance(batch, str) and shapes == [[batch, 3, *IMAGE_SIZE], [batch, 59, *IMAGE_SIZE]]
    predictor = SegmentationPredictor(onnx_file)
    assert (predictor.decoder.class_names, predictor.decoder.palette) == (checkpoint["class_names"],
                                                                          checkpoint["palette"])
    assert (predictor.model_name, predictor.image_size, predictor.split_ids) == ("unet", IMAGE_SIZE,
                                                                                 checkpoint["split_ids"])


def test_test_report_of_other_weights_is_left_out_with_a_notice(tmp_path, capsys):
    """A finished run's report stays beside the checkpoint of a second run into the same folder (another seed)
    that stopped before its test evaluation: same file name, other weights."""
    reported, second_run = ({"model_name": "unet", "state_dict": tiny_unet(seed=seed).state_dict()} for seed in (0, 1))
    report = {"checkpoint": "results/unet.pt", "state_dict_digest": state_dict_digest(reported["state_dict"]),
              **TEST_REPORT}
    (tmp_path / "unet_test.json").write_text(json.dumps(report))
    assert export.read_test_metrics(tmp_path / "unet.pt", reported) == TEST_REPORT
    assert export.read_test_metrics(tmp_path / "copy-of-unet.pt", reported) == TEST_REPORT  # same weights
    assert capsys.readouterr().out == ""
    assert export.read_test_metrics(tmp_path / "unet.pt", second_run) is None
    assert capsys.readouterr().out == (f"Left out the test metrics of {tmp_path / 'unet_test.json'}: they are not "
                                       f"about the weights of {tmp_path / 'unet.pt'}; finish the run that wrote "
                                       "them (train.py --resume) to include them\n")
    (tmp_path / "unet_test.json").write_text(json.dumps({key: report[key] for key in report
                                                         if key != "state_dict_digest"}))
    assert export.read_test_metrics(tmp_path / "unet.pt", reported) is None
    assert export.read_test_metrics(tmp_path / "unet.pt", {**reported, "model_name": "mobilenetv3"}) is None


def test_export_command_writes_the_file_and_says_how_close_it_is(onnx_packages, tmp_path, capsys):
    checkpoint = write_tiny_checkpoint(tmp_path / "unet.pt")
    out = tmp_path / "deploy" / "unet.onnx"
    assert run_cli(export.main, [str(checkpoint), "--out", str(out), "--opset", "20"]) == 0
    output = capsys.readouterr().out
    assert f"to {out}" in output and "opset 20" in output
    assert [path.name for path in out.parent.iterdir()] == ["unet.onnx"]  # no temporary file left


@pytest.mark.parametrize("case", ["not a checkpoint", "out without .onnx", "opset too old", "missing file"])
def test_bad_export_gives_one_error_line_naming_the_file(case, onnx_packages, tmp_path, capsys):
    checkpoint = write_tiny_checkpoint(tmp_path / "unet.pt")
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    argv, fragment = {
        "not a checkpoint": ([str(tmp_path / "notes.pt")], f"checkpoint {tmp_path / 'notes.pt'} cannot be read"),
        "out without .onnx": ([str(checkpoint), "--out", str(tmp_path / "unet.pt2")], "does not end in .onnx"),
        "opset too old": ([str(checkpoint), "--opset", "11"], "opset 11 is too old"),
        "missing file": ([str(tmp_path / "gone.pt")], f"checkpoint {tmp_path / 'gone.pt'} not found"),
    }[case]
    assert run_cli(export.main, argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: ") and fragment in error, error
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".*.tmp"))


def test_export_of_an_onnx_file_says_it_takes_a_pt_checkpoint(tmp_path, capsys):
    onnx_file = tmp_path / "unet.onnx"
    onnx_file.write_bytes(b"\x08\x09\x12\x07pytorch")  # how every ONNX file begins (its IR version field)
    assert run_cli(export.main, [str(onnx_file)]) == 2
    assert capsys.readouterr().err == (f"error: {onnx_file} is already an ONNX file: export.py takes a .pt "
                                       "checkpoint written by train.py (img_test.py --checkpoint runs the .onnx "
                                       "file as it is)\n")
    assert [path.name for path in tmp_path.iterdir()] == ["unet.onnx"]


@pytest.mark.parametrize("missing", ["onnx", "onnxscript", "onnxruntime"])
def test_export_without_a_package_names_the_package_to_install(missing, tmp_path, monkeypatch):
    for checked_before in EXPORT_PACKAGES[:EXPORT_PACKAGES.index(missing)]:
        pytest.importorskip(checked_before)
    checkpoint = write_tiny_checkpoint(tmp_path / "unet.pt")
    monkeypatch.setitem(sys.modules, missing, None)  # what an absent package looks like to an import
    with pytest.raises(ClothVisionError, match=f"needs the package '{missing}'.*requirements-export.txt"):
        export.export_checkpoint(checkpoint)
    assert not (tmp_path / "unet.onnx").exists()


def test_export_refuses_a_file_whose_logits_differ(onnx_packages, tmp_path, monkeypatch):
    from inference.backends import OnnxRuntimeBackend

    checkpoint = write_tiny_checkpoint(tmp_path / "unet.pt")

    def shifted_logits(self, batch):
        logits = original_logits(self, batch)
        return logits + (logits.max() - logits.min())

    original_logits = OnnxRuntimeBackend.logits
    monkeypatch.setattr(OnnxRuntimeBackend, "logits", shifted_logits)
    with pytest.raises(ClothVisionError, match=r"differ from PyTorch's by 1\.0e\+00 of their range"):
        export.export_checkpoint(checkpoint)
    assert not (tmp_path / "unet.onnx").exists()


def test_a_photo_gets_the_same_prediction_figure_and_classes_from_the_onnx_file(synthetic_data, checkpoints,
                                                                               tmp_path, capsys):
    photo = synthetic_data / "photos" / "0003.jpg"
    results = {}
    for checkpoint in checkpoints:
        # float32 for the .pt too: what the ONNX file computes (auto would be bf16 on a CPU with native bf16).
        prediction, classes = img_test.test_with_image(photo, checkpoint=checkpoint, show=False, precision="fp32",
                                                       save_to=tmp_path / f"{checkpoint.suffix[1:]}.png")
        results[checkpoint.suffix] = prediction, classes, capsys.readouterr().out
    (expected, expected_classes, expected_output), (predicted, predicted_classes, output) = results.values()
    np.testing.assert_array_equal(predicted, expected)
    assert predicted_classes == expected_classes and output == expected_output  # Real and Predicted classes
    with Image.open(tmp_path / "pt.png") as expected_figure, Image.open(tmp_path / "onnx.png") as figure:
        assert figure.size == expected_figure.size


def test_folder_and_test_split_modes_write_the_same_files_with_the_onnx_file(synthetic_data, checkpoints, tmp_path,
                                                                            capsys):
    for checkpoint in checkpoints:
        assert run_cli(img_test.main, [str(synthetic_data / "photos"), "--out-dir", str(tmp_path / checkpoint.suffix),
                                       "--checkpoint", str(checkpoint), "--precision", "fp32"]) == 0
        assert run_cli(img_test.main, ["--test-split-image", "1", "--data-dir", str(synthetic_data),
                                       "--checkpoint", str(checkpoint), "--out-dir", str(tmp_path / "split")]) == 0
    expected = sorted((tmp_path / ".pt").iterdir())
    # Three PNGs per photo and the descriptions of all of them (img_test --out-dir writes descriptions.jsonl).
    assert len(expected) == 6 * 3 + 1 and (tmp_path / ".pt" / "descriptions.jsonl").is_file()
    assert [path.name for path in sorted((tmp_path / ".onnx").iterdir())] == [path.name for path in expected]
    for path in expected:
        if path.name != "descriptions.jsonl":
            assert (tmp_path / ".onnx" / path.name).read_bytes() == path.read_bytes(), path.name
    # The same descriptions, each recording the checkpoint file that made it.
    described = {checkpoint.suffix: [json.loads(line) for line in
                                     (tmp_path / checkpoint.suffix / "descriptions.jsonl").read_text().splitlines()]
                 for checkpoint in checkpoints}
    for checkpoint in checkpoints:
        assert {row.pop("checkpoint") for row in described[checkpoint.suffix]} == {str(checkpoint)}
        assert len({row.pop("checkpoint_sha256") for row in described[checkpoint.suffix]}) == 1
    assert described[".onnx"] == described[".pt"]
    assert "for 6 images" in capsys.readouterr().out
    assert sorted(path.name for path in (tmp_path / "split").iterdir()) == ["0006_classes.png", "0006_mask.png",
                                                                          "0006_overlay.png", "descriptions.jsonl"]


@pytest.mark.parametrize("case", ["not an ONNX file", "a .pt renamed", "no metadata", "missing", "GPU asked for",
                                  "bf16 asked for"])
def test_bad_onnx_checkpoint_gives_one_error_line_naming_the_file(case, checkpoints, synthetic_data, tmp_path,
                                                                  capsys):
    checkpoint, onnx_file = checkpoints
    bad = tmp_path / "bad.onnx"
    options = []
    if case == "not an ONNX file":
        bad.write_text("not a model")
    elif case == "a .pt renamed":
        bad.write_bytes(checkpoint.read_bytes())
    elif case == "no metadata":  # a file of torch's exporter alone
        bad.write_bytes(export_to_onnx(torch.nn.Conv2d(3, 59, 1), (32, 24)))
    elif case != "missing":
        bad = onnx_file
        options = ["--device", "cuda"] if case == "GPU asked for" else ["--precision", "bf16"]
    fragment = {"not an ONNX file": "is not an ONNX model", "a .pt renamed": "is not an ONNX model",
                "no metadata": "without ClothVision's metadata (it lacks format, format_version, model_name",
                "missing": "not found: export one with", "GPU asked for": "runs in ONNX Runtime on the CPU",
                "bf16 asked for": "runs in ONNX Runtime on the CPU in float32"}[case]
    photo = synthetic_data / "photos" / "0001.jpg"
    assert run_cli(img_test.main, [str(photo), "--checkpoint", str(bad), "--save", str(tmp_path / "f.png"),
                                   *options]) == 2
    error = one_error_line(capsys.readouterr().err)
    assert f"checkpoint {bad}" in error and fragment in error, error
    assert not (tmp_path / "f.png").exists()


def test_onnx_checkpoint_without_onnx_runtime_names_the_package(tmp_path, monkeypatch):
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"checked after the package")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an absent package looks like to an import
    with pytest.raises(ClothVisionError) as raised:
        SegmentationPredictor(onnx_file)
    assert str(raised.value) == (f"checkpoint {onnx_file} needs the package 'onnxruntime', which is not installed: "
                                 "pip install -r requirements-export.txt")
