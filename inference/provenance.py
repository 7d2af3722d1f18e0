"""Which checkpoint made a description: its path and the SHA-256 of its file, so that --find --save redraws a
photo with the very model that described it, and refuses another."""

import hashlib
from functools import cache
from pathlib import Path

from helpers.errors import ClothVisionError

# What a description made from ground-truth labels records instead of a checkpoint.
FROM_LABELS = "labels"


def file_sha256(path: str | Path) -> str:
    """The hex SHA-256 of a file's bytes; a checkpoint is hashed once per run however many photos it describes,
    and again once it is written anew."""
    status = Path(path).stat()
    return _sha256_of_version(str(path), status.st_mtime_ns, status.st_size)


@cache
def _sha256_of_version(path: str, modified_ns: int, size: int) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def check_same_checkpoint(image: str, recorded_path: str, recorded_sha256: str, given_path: Path,
                          given_sha256: str) -> None:
    """Refuse to redraw a photo with another checkpoint than the one whose prediction its description records."""
    if given_sha256 != recorded_sha256:
        raise ClothVisionError(
            f"{image} was described by checkpoint {recorded_path} (sha256 {recorded_sha256[:12]}), but "
            f"{given_path} (sha256 {given_sha256[:12]}) is another file, whose overlays would not show what the "
            f"description says: redraw with the checkpoint that described it (--checkpoint {recorded_path}, "
            "the default), or describe the photos again with this one")
