import os
import stat

import pytest

from helpers.atomic_files import atomic_directory, atomic_write, atomic_write_text


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_write_gives_plain_file_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        written = atomic_write_text(tmp_path / "result.txt", "hello")
    finally:
        os.umask(previous)
    assert written.read_text() == "hello"
    assert _mode(written) == 0o644
    assert [path.name for path in tmp_path.iterdir()] == ["result.txt"]


def test_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "result.txt"
    target.write_text("old")

    def failing_write(temporary):
        temporary.write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write(target, failing_write)
    assert target.read_text() == "old"
    assert [path.name for path in tmp_path.iterdir()] == ["result.txt"]


def test_atomic_directory_replaces_the_old_folder_only_on_success(tmp_path):
    target = tmp_path / "cache"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(target) as building:
        (building / "new.txt").write_text("half")
        raise RuntimeError("interrupted")
    assert sorted(path.name for path in target.iterdir()) == ["old.txt"]

    previous = os.umask(0o022)
    try:
        with atomic_directory(target) as building:
            (building / "new.txt").write_text("new")
    finally:
        os.umask(previous)
    assert sorted(path.name for path in target.iterdir()) == ["new.txt"]
    assert _mode(target) == 0o755
    assert [path.name for path in tmp_path.iterdir()] == ["cache"]
