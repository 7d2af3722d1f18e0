"""Every output path of img_test.py, preprocess.py and export.py is checked before any work: a file where a
folder is wanted, a folder where a file is wanted, a path under a file, a folder that refuses new files; each
ends in one error line naming the path and the flag, and nothing is written."""

import os

import pytest
from checkpoint_factory import write_tiny_checkpoint
from PIL import Image
from test_img_test_errors import assert_one_error_line
from training_runs import single_torch_thread  # noqa: F401 (autouse fixture: tests run on one thread)

import export
import img_test
import preprocess
from helpers import output_paths
from helpers.atomic_files import atomic_directory, atomic_write_text
from helpers.errors import ClothVisionError, run_cli
from helpers.output_paths import check_output_file, check_output_folder


@pytest.fixture
def place(tmp_path, ccp_synthetic):
    """A photo, a checkpoint, a dataset, a regular file and a folder; the names of all that exists at first."""
    Image.new("RGB", (30, 40), (200, 30, 30)).save(tmp_path / "photo.jpg")
    write_tiny_checkpoint(tmp_path / "model.pt")
    (tmp_path / "notes.txt").write_text("a regular file")
    (tmp_path / "folder").mkdir()
    paths = {"tmp": tmp_path, "photo": tmp_path / "photo.jpg", "checkpoint": tmp_path / "model.pt",
             "data": ccp_synthetic, "file": tmp_path / "notes.txt", "folder": tmp_path / "folder"}
    return paths


def everything_under(folder):
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def refusing_new_files(*arguments, **keywords):
    raise PermissionError(13, "Permission denied")


COMMANDS = {
    "img_test --save": (img_test.main, "{photo} --checkpoint {checkpoint} --save {target}.png", "--save"),
    "img_test --json": (img_test.main, "{photo} --describe --checkpoint {checkpoint} --json {target}.jsonl",
                        "--json"),
    "img_test --out-dir": (img_test.main, "{photo} --checkpoint {checkpoint} --out-dir {target}", "--out-dir"),
    "preprocess --out": (preprocess.main, "--data {data} --out {target} --workers 1", "--out"),
    "export --out": (export.main, "{checkpoint} --out {target}.onnx", "--out"),
}
FILE_FLAGS = ("--save", "--json", "--out")
# Each case: where the output goes ({file} is a regular file, {folder} a folder) and what its error says.
PROBLEMS = {
    "under a file": ("{file}/output", "is a file, not a folder, so nothing can be written under it"),
    "in a folder that refuses new files": ("{folder}/output", "refuses new files (PermissionError"),
}


def command_line(template, place, target):
    return template.format(target=target, **place).split()


@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize("command", COMMANDS)
def test_an_output_that_cannot_be_written_is_refused_before_any_work(command, problem, place, capsys,
                                                                     monkeypatch):
    main, template, flag = COMMANDS[command]
    target_template, fragment = PROBLEMS[problem]
    if problem == "in a folder that refuses new files":
        # Root writes into read-only folders, so the refusal is simulated where the check asks the system.
        monkeypatch.setattr(output_paths.tempfile, "TemporaryFile", refusing_new_files)
    before = everything_under(place["tmp"])
    argv = command_line(template, place, target_template.format(**place))
    assert run_cli(main, argv) == 2
    captured = capsys.readouterr()
    assert_one_error_line(captured.err, fragment)
    assert f"error: {flag} " in captured.err and "Traceback" not in captured.err
    assert captured.out == ""  # nothing predicted, converted or exported first
    assert everything_under(place["tmp"]) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_an_output_of_the_wrong_kind_is_refused_before_any_work(command, place, capsys):
    main, template, flag = COMMANDS[command]
    wants_file = flag in FILE_FLAGS and command != "preprocess --out"
    # A folder named like the file (photo.png/) where a file goes; a regular file where a folder goes.
    if wants_file:
        suffix = template.split("{target}")[1].split()[0]
        (place["folder"] / f"output{suffix}").mkdir()
        target, fragment = place["folder"] / "output", "is a folder, and a file is written there"
    else:
        target, fragment = place["file"], "is a file, and a folder is written there"
    before = everything_under(place["tmp"])
    assert run_cli(main, command_line(template, place, target)) == 2
    captured = capsys.readouterr()
    assert_one_error_line(captured.err, fragment)
    assert f"error: {flag} " in captured.err and captured.out == ""
    assert everything_under(place["tmp"]) == before


def test_the_checks_accept_what_can_be_written_and_create_nothing(tmp_path):
    assert check_output_file(tmp_path / "new" / "deeper" / "figure.png", "--save") == (
        tmp_path / "new" / "deeper" / "figure.png")
    (tmp_path / "old.png").write_text("replaced later")
    assert check_output_file(tmp_path / "old.png", "--save") == tmp_path / "old.png"
    assert check_output_folder(tmp_path / "cache", "--out", replaced=True) == tmp_path / "cache"
    (tmp_path / "predictions").mkdir()
    assert check_output_folder(tmp_path / "predictions", "--out-dir") == tmp_path / "predictions"
    assert everything_under(tmp_path) == ["old.png", "predictions"]


def test_a_replaced_folder_needs_its_parent_writable_too(tmp_path, monkeypatch):
    (tmp_path / "cache").mkdir()
    folders_asked = []

    def refusing_in_parent(dir, **keywords):
        folders_asked.append(dir)
        if dir == tmp_path:
            raise PermissionError(13, "Permission denied")
        return open(os.devnull, "rb")

    monkeypatch.setattr(output_paths.tempfile, "TemporaryFile", refusing_in_parent)
    assert check_output_folder(tmp_path / "cache", "--out-dir") == tmp_path / "cache"
    with pytest.raises(ClothVisionError, match=rf"--out {tmp_path / 'cache'} cannot be written: folder {tmp_path} "
                                               "refuses new files"):
        check_output_folder(tmp_path / "cache", "--out", replaced=True)
    assert folders_asked == [tmp_path / "cache", tmp_path / "cache", tmp_path]


def test_a_failed_write_names_its_path_in_one_line(tmp_path):
    """What the checks cannot foresee (here a folder replaced by a file after them) still ends in one line,
    for every user: not even root can create a file under a regular file."""
    (tmp_path / "gone").write_text("a file now")
    with pytest.raises(ClothVisionError) as error:
        atomic_write_text(tmp_path / "gone" / "figure.svg", "<svg/>")
    assert str(error.value).startswith(f"cannot write {tmp_path / 'gone' / 'figure.svg'} (")
    assert "\n" not in str(error.value)
    with (pytest.raises(ClothVisionError, match=rf"cannot write {tmp_path / 'gone' / 'cache'} \(FileExistsError"),
          atomic_directory(tmp_path / "gone" / "cache")):
        pass


def test_an_unforeseen_os_error_ends_in_one_line_too(tmp_path, capsys):
    def main(argv):
        (tmp_path / "missing" / "file.txt").read_text()

    assert run_cli(main, []) == 2
    assert_one_error_line(capsys.readouterr().err, f"FileNotFoundError: [Errno 2] No such file or directory: "
                                                   f"'{tmp_path / 'missing' / 'file.txt'}'")
