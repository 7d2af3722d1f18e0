"""Write files so that an interrupted run leaves either the old file or the new one, never half of one."""

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers.errors import ClothVisionError, error_reason


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call write(temporary_path) in the target's folder, then rename the result onto path; an OSError
    (a full disk, a folder that cannot be written) becomes a one-line error naming path."""
    path = Path(path)
    try:
        return _atomic_write(path, write)
    except OSError as error:
        raise write_error(path, error) from None


def write_error(path: Path, error: OSError) -> ClothVisionError:
    return ClothVisionError(f"cannot write {path} ({error_reason(error)}): check that its folder can be "
                            "written and that the disk has room, or choose another path")


def _atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(descriptor)
    try:
        write(Path(temporary))
        # mkstemp creates the file private (0600); give it the permissions a plain open() would.
        os.chmod(temporary, 0o666 & ~_current_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty sibling folder to fill; on success it replaces path, on failure it is removed. An
    OSError while it is made or filled becomes a one-line error naming path."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as error:
        raise write_error(path, error) from None
    os.chmod(building, 0o777 & ~_current_umask())
    try:
        yield building
    except BaseException as error:
        shutil.rmtree(building, ignore_errors=True)
        if isinstance(error, OSError):
            raise write_error(path, error) from None
        raise
    # A folder cannot be renamed over a non-empty one: move the old one aside first, so the
    # name only ever points at a complete folder (or, for an instant, at nothing).
    retired = None
    if path.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
        os.replace(path, retired / path.name)
    os.replace(building, path)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)
