"""Every bad input ends in one line naming the file and the fix, exit code 2, and no cache, not even half."""

import multiprocessing
import multiprocessing.pool
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image
from synthetic_ccp import write_ccp_layout, write_kaggle_layout

from helpers.errors import run_cli
from helpers.image_io import UnreadableImageError
from preprocess import main

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_preprocess(data_dir, out_dir, capsys, *extra):
    argv = ["--data", str(data_dir), "--out", str(out_dir), "--size", "20", "14", "--workers", "1", *extra]
    code = run_cli(main, argv)
    return code, capsys.readouterr().err


def assert_one_line_error(code, stderr, *fragments):
    assert code == 2
    assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    for fragment in fragments:
        assert str(fragment) in stderr


def assert_no_cache(out_dir):
    assert not out_dir.exists()
    assert not [path for path in out_dir.parent.iterdir() if path.name.startswith(f".{out_dir.name}.")]


def write_label_mat(path, groundtruth):
    scipy.io.savemat(path, {"groundtruth": groundtruth})


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def photo_missing(root):
    (root / "photos" / "0003.jpg").unlink()
    return root / "annotations" / "pixel-level" / "0003.mat", "has no photo"


def photo_not_a_jpeg(root):
    (root / "photos" / "0002.jpg").write_bytes(b"GIF? no, just text pretending to be a photo")
    return root / "photos" / "0002.jpg", "not an image file"


def photo_truncated(root):
    truncate(root / "photos" / "0002.jpg")
    return root / "photos" / "0002.jpg", "truncated"


def mat_truncated(root):
    truncate(root / "annotations" / "pixel-level" / "0004.mat")
    return root / "annotations" / "pixel-level" / "0004.mat", "not a readable MATLAB"


def mat_foreign(root):
    (root / "annotations" / "pixel-level" / "0004.mat").write_text("name,value\nnot,matlab\n")
    return root / "annotations" / "pixel-level" / "0004.mat", "not a readable MATLAB"


def mat_without_groundtruth(root):
    scipy.io.savemat(root / "annotations" / "pixel-level" / "0004.mat", {"segmentation": np.zeros((40, 28))})
    return root / "annotations" / "pixel-level" / "0004.mat", "no 'groundtruth' variable"


def class_index_too_large(root):
    groundtruth = np.zeros((40, 28), dtype=np.uint8)
    groundtruth[3:5, 3:5] = 77
    write_label_mat(root / "annotations" / "pixel-level" / "0005.mat", groundtruth)
    return root / "annotations" / "pixel-level" / "0005.mat", "class index 77 on 4 pixels"


def size_mismatch(root):
    write_label_mat(root / "annotations" / "pixel-level" / "0006.mat", np.zeros((41, 28), dtype=np.uint8))
    return root / "annotations" / "pixel-level" / "0006.mat", "label is 28x41 pixels but its photo"


def label_list_missing(root):
    (root / "label_list.mat").unlink()
    return root / "label_list.mat", "is missing"


def label_list_foreign(root):
    truncate(root / "label_list.mat", keep=0.3)
    return root / "label_list.mat", "not a readable MATLAB"


def off_palette_colour(root):
    path = root / "labels" / "pixel_level_labels_colored" / "0002.png"
    colours = np.array(Image.open(path))
    colours[0, :3] = (1, 2, 3)
    Image.fromarray(colours).save(path)
    return path, "colour (1, 2, 3) on 3 pixels is not in the palette"


def png_truncated(root):
    truncate(root / "labels" / "pixel_level_labels_colored" / "0003.png")
    return root / "labels" / "pixel_level_labels_colored" / "0003.png", "truncated"


def class_dict_malformed(root):
    (root / "class_dict.csv").write_text("class_name,r,g,b\nnone,0,0,0\nbag,12,oops,5\n")
    return root / "class_dict.csv", "line 3"


def class_dict_missing(root):
    (root / "class_dict.csv").unlink()
    return root / "class_dict.csv", "is missing"


def image_missing_for_png(root):
    (root / "images" / "0001.jpg").unlink()
    return root / "labels" / "pixel_level_labels_colored" / "0001.png", "has no photo"


BROKEN_DATASETS = [
    *((write_ccp_layout, break_dataset) for break_dataset in (
        photo_missing, photo_not_a_jpeg, photo_truncated, mat_truncated, mat_foreign, mat_without_groundtruth,
        class_index_too_large, size_mismatch, label_list_missing, label_list_foreign)),
    *((write_kaggle_layout, break_dataset) for break_dataset in (
        off_palette_colour, png_truncated, class_dict_malformed, class_dict_missing, image_missing_for_png)),
]


@pytest.mark.parametrize(("write_layout", "break_dataset"), BROKEN_DATASETS,
                         ids=[break_dataset.__name__ for _, break_dataset in BROKEN_DATASETS])
def test_broken_dataset(tmp_path, capsys, write_layout, break_dataset):
    root = write_layout(tmp_path / "dataset")
    culprit, problem = break_dataset(root)
    out_dir = tmp_path / "cache"
    assert_one_line_error(*run_preprocess(root, out_dir, capsys), culprit, problem)
    assert_no_cache(out_dir)


def test_missing_data_folder(tmp_path, capsys):
    code, stderr = run_preprocess(tmp_path / "nowhere", tmp_path / "cache", capsys)
    assert_one_line_error(code, stderr, tmp_path / "nowhere", "does not exist", "--download")


def test_empty_data_folder(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "README.md").write_text("how to get the data")
    code, stderr = run_preprocess(tmp_path / "data", tmp_path / "cache", capsys)
    assert_one_line_error(code, stderr, tmp_path / "data", "is empty", "--download")


def test_unrecognised_layout(tmp_path, capsys):
    (tmp_path / "data" / "pictures").mkdir(parents=True)
    code, stderr = run_preprocess(tmp_path / "data", tmp_path / "cache", capsys)
    assert_one_line_error(code, stderr, "holds no CCP dataset", "annotations/pixel-level", "class_dict.csv")


def test_label_folder_without_labels(tmp_path, capsys):
    root = write_ccp_layout(tmp_path / "ccp", count=3)
    for path in (root / "annotations" / "pixel-level").iterdir():
        path.unlink()
    code, stderr = run_preprocess(root, tmp_path / "cache", capsys)
    assert_one_line_error(code, stderr, root / "annotations" / "pixel-level", "holds no *.mat labels")


def test_output_folder_that_is_not_a_cache_is_never_replaced(tmp_path, capsys):
    root = write_ccp_layout(tmp_path / "ccp", count=3)
    code, stderr = run_preprocess(root, root, capsys)
    assert_one_line_error(code, stderr, "is a non-empty folder that is not a preprocess.py cache")
    assert len(list((root / "photos").iterdir())) == 3


def test_too_few_images_to_split_fail_before_any_image_is_converted(tmp_path, capsys, monkeypatch):
    def no_conversion(*arguments, **keywords):
        raise AssertionError("images were converted before the split was checked")

    monkeypatch.setattr(multiprocessing, "Pool", no_conversion)
    root = write_ccp_layout(tmp_path / "ccp", count=2)
    assert_one_line_error(*run_preprocess(root, tmp_path / "cache", capsys), "at least 3")
    assert_no_cache(tmp_path / "cache")


def test_failed_rerun_keeps_the_previous_cache(tmp_path, capsys):
    root = write_ccp_layout(tmp_path / "ccp")
    out_dir = tmp_path / "cache"
    assert run_preprocess(root, out_dir, capsys)[0] == 0
    before = (out_dir / "labels.npy").read_bytes()
    culprit, problem = photo_truncated(root)
    assert_one_line_error(*run_preprocess(root, out_dir, capsys), culprit, problem)
    assert (out_dir / "labels.npy").read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cache", "ccp"]


def test_failure_while_writing_native_labels_leaves_the_previous_cache_whole(tmp_path, capsys, monkeypatch):
    import preprocess

    root = write_ccp_layout(tmp_path / "ccp")
    out_dir = tmp_path / "cache"
    assert run_preprocess(root, out_dir, capsys)[0] == 0
    before = {path.name: path.read_bytes() for path in out_dir.iterdir()}
    written = []

    def disk_full_after_one(archive, image_id, label):
        if written:
            raise OSError(28, "No space left on device")
        written.append(image_id)
        add_native_label(archive, image_id, label)

    add_native_label = preprocess.add_native_label
    monkeypatch.setattr(preprocess, "add_native_label", disk_full_after_one)
    assert_one_line_error(*run_preprocess(root, out_dir, capsys), "No space left on device")
    assert written and {path.name: path.read_bytes() for path in out_dir.iterdir()} == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cache", "ccp"]


@pytest.fixture
def started_pools(monkeypatch):
    """Every multiprocessing pool preprocess starts, kept so a test can read how its workers ended."""
    pools = []

    class RecordedPool(multiprocessing.pool.Pool):
        def __init__(self, *arguments):
            super().__init__(*arguments)
            pools.append(self)

    monkeypatch.setattr(multiprocessing, "Pool", RecordedPool)
    return pools


@pytest.mark.parametrize("workers", [1, 3])
def test_worker_failing_on_one_photo_gives_one_line_and_every_worker_ends_on_its_own(
        tmp_path, capsys, started_pools, workers):
    root = write_ccp_layout(tmp_path / "ccp")
    culprit, problem = photo_not_a_jpeg(root)
    out_dir = tmp_path / "cache"
    code, stderr = run_preprocess(root, out_dir, capsys, "--workers", str(workers))
    assert_one_line_error(code, stderr, culprit, problem)
    assert_no_cache(out_dir)
    # Exit code 0: each worker left when the pool was closed; -SIGTERM would mean it was killed, perhaps
    # halfway through sending a result, which can leave the pool waiting for ever on a queue's lock.
    [pool] = started_pools
    assert [worker.exitcode for worker in pool._pool] == [0] * workers


# Runs preprocess.py with a hook: the first photo a worker converts waits until the parent has received
# Ctrl-C, so the interrupt always lands while a worker is busy, however fast or slow the machine.
INTERRUPTED_RUN = """
import os, signal, sys, time
from pathlib import Path
import preprocess
from helpers.cache_conversion import CacheRowWriter
from helpers.errors import run_cli

marks = Path(sys.argv[1])
convert = CacheRowWriter.write

def convert_after_the_interrupt(self, row, sample):
    (marks / f"worker-{os.getpid()}").touch()
    deadline = time.monotonic() + 60
    while not (marks / "interrupted").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return convert(self, row, sample)

def note_the_interrupt(signal_number, frame):
    (marks / "interrupted").touch()
    raise KeyboardInterrupt

CacheRowWriter.write = convert_after_the_interrupt
signal.signal(signal.SIGINT, note_the_interrupt)
sys.exit(run_cli(preprocess.main, sys.argv[2:]))
"""


def processes_in_session(session_id):
    """Ids of the live processes of a session (Linux /proc): those a command left behind when it ended."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while the folder was read
            continue
        # After the command name: state, parent, process group, session.
        if int(fields[3]) == session_id and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads the process table from Linux's /proc")
def test_ctrl_c_during_preprocessing_gives_one_line_no_cache_and_no_process_left(tmp_path):
    root = write_ccp_layout(tmp_path / "ccp")
    marks = tmp_path / "marks"
    marks.mkdir()
    out_dir = tmp_path / "cache"
    command = [sys.executable, "-c", INTERRUPTED_RUN, str(marks), "--data", str(root), "--out", str(out_dir),
               "--size", "20", "14", "--workers", "2"]
    # A session of its own, as a terminal's foreground job: Ctrl-C sends SIGINT to all of its processes.
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not list(marks.glob("worker-*")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130 and stderr == "error: interrupted\n", stderr
    assert_no_cache(out_dir)
    assert processes_in_session(process.pid) == []


def test_script_exits_with_code_2_and_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "preprocess.py", "--data", str(tmp_path / "nowhere"),
                             "--out", str(tmp_path / "cache")],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: data folder {tmp_path / 'nowhere'} does not exist")


def test_unreadable_image_error_survives_the_trip_back_from_a_worker():
    error = pickle.loads(pickle.dumps(UnreadableImageError("image a.jpg is corrupt: replace it", "corrupt")))
    assert type(error) is UnreadableImageError
    assert (str(error), error.reason) == ("image a.jpg is corrupt: replace it", "corrupt")
