"""Check, before any work, that a command can write where it was told to.

    check_output_file(path, "--save")     # a file will be written at path
    check_output_folder(path, "--out")    # a folder will be filled (or, replaced=True, replaced) at path

Both raise a one-line ClothVisionError naming the path, the flag and the fix when path is an existing thing of
the wrong kind, lies under a file, or lies in a folder that cannot be written; they create nothing. Minutes of
work then never end in a PermissionError or an IsADirectoryError at the first write.
"""

import os
import tempfile
from pathlib import Path

from helpers.errors import ClothVisionError, error_reason

WRITE_FIX = "choose a folder you can write to, or change its permissions"


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """path can be written as a file: it is not a folder, and its folder exists or can be made, writably."""
    path = Path(path)
    if path.is_dir():
        raise ClothVisionError(f"{flag} {path} is a folder, and a file is written there: name a file, "
                               f"e.g. {flag} {path / 'name'}")
    _check_can_create_in(_nearest_existing_folder(path, flag), path, flag)
    return path


def check_output_folder(path: str | os.PathLike, flag: str, replaced: bool = False) -> Path:
    """path can be a folder that files are written into; replaced: the whole folder is swapped for a new one,
    built beside it, so its parent must be writable too."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ClothVisionError(f"{flag} {path} is a file, and a folder is written there: choose a folder "
                               f"name, e.g. {flag} {path.with_suffix('')}_output")
    if path.is_dir():
        _check_can_create_in(path, path, flag)
        if not replaced:
            return path
    _check_can_create_in(_nearest_existing_folder(path, flag), path, flag)
    return path


def _nearest_existing_folder(path: Path, flag: str) -> Path:
    """The closest existing ancestor of path, which the missing folders in between will be made in."""
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ClothVisionError(f"{flag} {path}: {ancestor} is a file, not a folder, so nothing can be written "
                               f"under it: choose a path in a folder")
    return ancestor


def _check_can_create_in(folder: Path, path: Path, flag: str) -> None:
    # Creating (and at once deleting) a file is the one test that holds for every user, root included,
    # and for read-only mounts, where permission bits and os.access can say yes.
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".write-check."):
            pass
    except OSError as error:
        raise ClothVisionError(f"{flag} {path} cannot be written: folder {folder} refuses new files "
                               f"({error_reason(error)}): {WRITE_FIX}") from None
