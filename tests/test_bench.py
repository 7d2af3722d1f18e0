import re
import sys
from importlib.util import find_spec

import numpy as np
import pytest
import torch
from PIL import Image
from synthetic_ccp import CLASS_NAMES, PALETTE

import bench
from benchmarks.data_rows import measure_label_encoding, read_colour_labels
from benchmarks.flops import forward_flops_per_image
from benchmarks.original_baselines import (
    DecodeEveryEpochDataset,
    original_encode_label,
    original_one_hot_lookup,
)
from benchmarks.step_overhead import measure_step_overhead
from benchmarks.table import Row, format_ratio, markdown_table
from benchmarks.timing import median_seconds_alternating
from helpers.devices import resolve_precision
from helpers.errors import ClothVisionError
from label_encoder import LabelEncoder, read_groundtruth_mat

# The deployment rows need requirements-export.txt; without it they are one row that says so.
DEPLOYMENT_ROWS = 2 if all(find_spec(package) for package in ("onnx", "onnxscript", "onnxruntime")) else 1
ROW_GROUPS = ["label encoding", "preprocessing", "data loading", "data loading", "training step",
              "inference latency", "CPU precision: train step", "CPU precision: inference",
              "data loading, augment full", "describe garments", *["CPU deployment"] * DEPLOYMENT_ROWS,
              "flip TTA", "training loss", "CPU compile"]
# format_ratio's forms (0.95x, 12.5x, 812x): a shared machine's noise can put a toy ratio in any of them.
RATIO = r"\d+(\.\d+)?x"


def table_rows(table: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in table.splitlines()[2:]
            if line.startswith("| ")]


def test_tiny_bench_on_synthetic_data_prints_every_row_group(ccp_synthetic, tmp_path, capsys):
    output, work_dir = tmp_path / "bench.md", tmp_path / "work"
    work_dir.mkdir()
    table = bench.main(["--tiny", "--data", str(ccp_synthetic), "--models", "unet",
                        "--work-dir", str(work_dir), "--output", str(output)])
    assert table.splitlines()[0] == "| benchmark | baseline | this project | result | goal | measured on |"
    rows = table_rows(table)
    assert [row[0] for row in rows] == ROW_GROUPS
    assert all(len(row) == 6 for row in rows)
    label_row = rows[0]
    assert re.search(rf"\b{RATIO} faster, 59\.0x smaller, same classes", label_row[3])
    assert "6 images" in rows[1][2]
    by_group = {row[0]: row for row in rows}
    assert "unet (32×32, base_width 4)" in by_group["training step"][5]
    assert "unet" in by_group["inference latency"][2]
    assert "% overhead" in by_group["training step"][3]
    assert re.fullmatch(RATIO + " faster", by_group["CPU precision: train step"][3])
    assert by_group["CPU precision: train step"][1].startswith("float32: ")
    assert re.fullmatch(r"\d+\.\d % of a step", by_group["data loading, augment full"][3])
    describe_row = by_group["describe garments"]
    assert describe_row[1].startswith("predict: ") and describe_row[2].startswith("predict + describe: ")
    assert re.fullmatch(r"[+-]\d+\.\d % time", describe_row[3]) and describe_row[4] == "<= 20 %"
    assert "unet (32×32, base_width 4), fresh, 0001.jpg (28×40)" in describe_row[5]
    assert re.search(r"the \d+ garments of its label described", describe_row[5])
    deployment = [row for row in rows if row[0] == "CPU deployment"]
    if DEPLOYMENT_ROWS == 2:
        precision = resolve_precision("auto", "cpu").describe()
        assert [row[2].split(": ")[0] for row in deployment] == [f"PyTorch, {precision}", "ONNX Runtime, float32"]
        assert all(row[1].startswith("PyTorch, float32: ") and re.fullmatch(RATIO + " faster", row[3])
                   and "unet (32×32, base_width 4)" in row[5] for row in deployment)
    else:
        assert "pip install -r requirements-export.txt" in deployment[0][3]
    flip_row = by_group["flip TTA"]
    assert flip_row[1].startswith("no TTA: ") and flip_row[2].startswith("flip TTA: ")
    assert re.fullmatch(RATIO + " the time", flip_row[3]) and "unet (32×32, base_width 4), batch 1" in flip_row[5]
    loss_row = by_group["training loss"]
    assert loss_row[1].startswith("cross-entropy: ") and loss_row[2].startswith("cross-entropy + soft-Jaccard: ")
    assert re.fullmatch(RATIO + " the time", loss_row[3]) and "unet (32×32, base_width 4)" in loss_row[5]
    compile_row = by_group["CPU compile"]
    assert compile_row[1].startswith("eager: ") and re.fullmatch(RATIO + " faster", compile_row[3])
    assert re.fullmatch(r"torch\.compile \(eager\): .+/step, first step \(compiling\) .+", compile_row[2])
    assert "unet (32×32, base_width 4)" in compile_row[5]
    assert "--tiny" in table and "--tiny: torch.compile with the eager backend" in table
    assert output.read_text(encoding="utf-8") == table
    assert capsys.readouterr().out.strip() == table.strip()
    assert list(work_dir.iterdir()) == []  # the temporary caches are gone


def test_label_encoding_row_reads_kaggle_pngs_and_reports_sizes(kaggle_synthetic):
    labels = read_colour_labels(kaggle_synthetic, None, count=2)
    assert labels.source.startswith("2 colour PNGs")
    row, original_seconds = measure_label_encoding(labels, repeats=1)
    assert row.benchmark == "label encoding" and original_seconds > 0
    # 40×28 pixels: 59 one-hot bytes each as the original stored them, 1 byte as class indices.
    assert "66.1 kB/label (uint8 H×W×59" in row.baseline and "528.6 kB float64" in row.baseline
    assert "1.1 kB/label (uint8 H×W)" in row.project


def test_ccp_labels_are_painted_with_the_encoders_palette(ccp_synthetic):
    labels = read_colour_labels(ccp_synthetic, None, count=3)
    assert len(labels.images) == 3 and "painted" in labels.source
    groundtruth = read_groundtruth_mat(ccp_synthetic / "annotations" / "pixel-level" / "0002.mat", 59)
    np.testing.assert_array_equal(labels.encoder.encode(labels.images[1]), groundtruth)


def test_kaggle_data_flag_refuses_the_original_layout(ccp_synthetic):
    with pytest.raises(ClothVisionError, match="not in the Kaggle layout"):
        read_colour_labels(ccp_synthetic, ccp_synthetic, count=1)


def test_original_encoder_gives_the_one_hot_of_label_encoder():
    encoder = LabelEncoder(CLASS_NAMES, PALETTE)
    index_map = np.array([[0, 1, 58], [3, 3, 0]], dtype=np.uint8)
    colours = np.asarray(PALETTE, dtype=np.uint8)[index_map]
    one_hot = original_encode_label(colours, original_one_hot_lookup(PALETTE))
    assert one_hot.dtype == torch.uint8 and one_hot.shape == (2, 3, 59)
    assert one_hot.sum(-1).eq(1).all()
    np.testing.assert_array_equal(one_hot.argmax(-1).numpy(), encoder.encode(colours))


def test_decode_every_epoch_dataset_resizes_normalises_and_flips_pairs_together(tmp_path):
    photo = np.zeros((8, 6, 3), dtype=np.uint8)
    photo[:, :3] = 255  # left half white
    Image.fromarray(photo).save(tmp_path / "photo.png")
    label = np.zeros((8, 6), dtype=np.uint8)
    label[:, :3] = 7
    dataset = DecodeEveryEpochDataset([tmp_path / "photo.png"], [tmp_path / "label"], lambda path: label,
                                      image_size=(4, 4), mean=[0.5] * 3, std=[0.5] * 3)
    seen_flipped = set()
    for _ in range(20):
        image, target = dataset[0]
        assert image.shape == (3, 4, 4) and target.shape == (4, 4) and target.dtype == torch.int64
        white_left = bool(image[0, 0, 0] > 0)
        seen_flipped.add(not white_left)
        # The label's garment side follows the photo's white side, flipped or not.
        assert bool(target[0, 0] == 7) == white_left
        assert image.max().item() == pytest.approx(1.0) and image.min().item() == pytest.approx(-1.0)
    assert seen_flipped == {False, True}


def test_alternating_timer_interleaves_contenders_after_warm_up():
    calls = []
    seconds = median_seconds_alternating({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                         repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert set(seconds) == {"a", "b"} and all(value >= 0 for value in seconds.values())


def test_flop_count_of_a_convolution_is_two_per_multiply_add():
    model = torch.nn.Conv2d(3, 5, kernel_size=3, padding=1, bias=False)
    assert forward_flops_per_image(model, (6, 4)) == 2 * 6 * 4 * 3 * 5 * 9
    assert model.weight.device.type == "cpu"  # counted on a copy


def test_ratio_format_and_markdown_table():
    assert [format_ratio(value) for value in (812.4, 12.46, 1.071)] == ["812x", "12.5x", "1.07x"]
    assert all(re.fullmatch(RATIO, format_ratio(value)) for value in (812.4, 72.9, 12.46, 1.071, 0.93))
    table = markdown_table([Row("a", "b|c", "d", "e", "f", "g")])
    assert table.splitlines() == ["| benchmark | baseline | this project | result | goal | measured on |",
                                  "| --- | --- | --- | --- | --- | --- |", "| a | b/c | d | e | f | g |"]


def test_precision_rows_say_when_the_cpu_has_no_native_bf16(monkeypatch):
    from benchmarks import precision_rows
    from benchmarks.model_rows import ModelSetting

    monkeypatch.setattr(precision_rows, "cpu_has_native_bf16", lambda: False)
    rows = precision_rows.measure_precision_speedups([ModelSetting("unet", (32, 32), {"base_width": 2})],
                                                     batch_size=2, repeats=1)
    assert [row.benchmark for row in rows] == ["CPU precision: train step", "CPU precision: inference"]
    assert all("no native bf16 on this CPU" in row.result for row in rows)


def test_denormal_rows_compare_a_trained_checkpoint_with_a_fresh_model_with_and_without_flushing(tmp_path):
    from checkpoint_factory import write_tiny_checkpoint

    from benchmarks.precision_rows import measure_denormal_effect

    rows = measure_denormal_effect(write_tiny_checkpoint(tmp_path / "unet.pt"), repeats=1)
    assert [row.benchmark for row in rows] == ["denormal numbers"] * 2
    assert ["flush denormals off" in rows[0].measured_on, "flush denormals on" in rows[1].measured_on] == [True] * 2
    assert all(re.fullmatch(r"trained / fresh = \d+\.\d\d", row.result) for row in rows)


def test_describe_row_predicts_with_a_trained_checkpoint_when_given(ccp_synthetic, tmp_path):
    from checkpoint_factory import write_tiny_checkpoint

    from benchmarks.describe_rows import measure_description_cost
    from helpers.dataset_layouts import find_dataset

    checkpoint = write_tiny_checkpoint(tmp_path / "trained.pt")
    row = measure_description_cost(bench.tiny_profile().describe_setting, checkpoint, {}, find_dataset(ccp_synthetic),
                                   repeats=1)
    assert row.benchmark == "describe garments" and row.measured_on.startswith("unet of trained.pt, 0001.jpg")


def test_step_overhead_measurement_reports_both_loops():
    result = measure_step_overhead("unet", {"base_width": 2}, image_size=(32, 32), batch_size=2, steps=1, repeats=1)
    assert result["bare_seconds_per_step"] > 0 and result["trainer_seconds_per_step"] > 0
    expected = 100 * (result["trainer_seconds_per_step"] / result["bare_seconds_per_step"] - 1)
    assert result["overhead_percent"] == pytest.approx(expected)


def test_rows_choose_the_groups_measured(tmp_path):
    table = bench.main(["--tiny", "--data", str(tmp_path / "unused"), "--models", "unet", "--rows", "augmentation"])
    assert [row[0] for row in table_rows(table)] == ["data loading, augment full"]
    assert "--tiny: toy sizes" in table
    # Every shortcut note belongs to a row group, or to all ("").
    assert {group for group, _ in bench.quick_profile().shortcuts} <= {"", *bench.ROW_GROUPS}


def test_deployment_rows_say_which_package_is_missing(monkeypatch):
    from benchmarks.deployment_rows import measure_deployment
    from benchmarks.model_rows import ModelSetting

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an absent package looks like to an import
    rows = measure_deployment([ModelSetting("unet", (32, 32), {"base_width": 2})], repeats=1)
    assert [row.benchmark for row in rows] == ["CPU deployment"]
    # onnxruntime, or a package checked before it where that is absent too
    assert re.fullmatch(r"not measured: measuring CPU deployment needs the package '\w+', which is not "
                        r"installed: pip install -r requirements-export\.txt", rows[0].result)


def test_flip_tta_row_times_two_forwards_against_one(monkeypatch):
    from benchmarks import tta_rows
    from benchmarks.model_rows import ModelSetting

    seen = []
    monkeypatch.setattr(tta_rows, "median_seconds_alternating",
                        lambda contenders, **_: seen.append([function() for function in contenders.values()])
                        or {"none": 0.004, "flip": 0.0083})
    rows = tta_rows.measure_flip_cost([ModelSetting("unet", (32, 32), {"base_width": 2})], repeats=1)
    assert [(row.baseline, row.project, row.result) for row in rows] == [
        ("no TTA: 4.0 ms/image", "flip TTA: 8.3 ms/image", "2.08x the time")]
    (without, with_flip), = seen
    assert without.shape == with_flip.shape == (1, 32, 32) and not torch.equal(without, with_flip)


def test_compile_row_says_when_the_compiler_fails(monkeypatch):
    from benchmarks.model_rows import ModelSetting
    from benchmarks.recipe_rows import measure_compile_speedup

    def failing_compile(model, backend):
        def fail(images):
            raise RuntimeError("InvalidCxxCompiler: no working C++ compiler found\nmore detail")
        return fail

    monkeypatch.setattr(torch, "compile", failing_compile)
    rows = measure_compile_speedup([ModelSetting("unet", (32, 32), {"base_width": 2})], batch_size=2, repeats=1)
    assert [row.benchmark for row in rows] == ["CPU compile"]
    assert rows[0].result == ("torch.compile (inductor) failed on this machine: RuntimeError: InvalidCxxCompiler: "
                              "no working C++ compiler found")
