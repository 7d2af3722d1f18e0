"""Fetch the annotated CCP photos from the dataset's public GitHub repository into a data folder.

The repository's archive holds 2098 photos: the 1004 with a pixel-level annotation (annotations/pixel-level/,
what preprocess.py trains on) and those with image-level tags only (annotations/image-level/, which
img_test.py --score-tags measures descriptions against), kept with label_list.mat in the original layout.
"""

import http.client
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

from tqdm import tqdm

from helpers.errors import ClothVisionError, error_reason

REPOSITORY = "https://github.com/bearpaw/clothing-co-parsing"
DEFAULT_URL = f"{REPOSITORY}/archive/refs/heads/master.zip"
DOWNLOADED_ENTRIES = ("label_list.mat", "annotations", "photos")
# Members of the archive, with or without the "<repository>-<branch>/" folder GitHub wraps them in.
ANNOTATION_MEMBER = re.compile(r"(?:[^/]+/)?annotations/(pixel-level|image-level)/(\w+)\.mat")
PHOTO_MEMBER = re.compile(r"(?:[^/]+/)?photos/(\w+)\.jpg")
LABEL_LIST_MEMBER = re.compile(r"(?:[^/]+/)?label_list\.mat")
CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = 60


def fetch(url: str, destination: Path, data_dir: Path) -> None:
    """Stream url into destination with a progress bar; a network failure says how to get the data by hand."""
    try:
        with (urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response,
              destination.open("wb") as file):
            size = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=size, desc="download", unit="B", unit_scale=True, disable=None) as progress:
                while chunk := response.read(CHUNK_BYTES):
                    file.write(chunk)
                    progress.update(len(chunk))
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        raise ClothVisionError(
            f"could not download {url} ({error_reason(error)}): on a machine with internet, download "
            f"{REPOSITORY} (Code > Download ZIP) and copy its photos/, annotations/ and "
            f"label_list.mat into {data_dir} (see data/README.md)"
        ) from None


def extract_annotated_photos(archive: Path, target: Path, url: str) -> tuple[int, int]:
    """Extract label_list.mat, the pixel-level and image-level annotations and their photos; return the counts
    of photos with a pixel-level annotation and of all photos extracted."""
    try:
        with zipfile.ZipFile(archive) as zip_file:
            members = {}
            for name in zip_file.namelist():
                for pattern, destination in ((ANNOTATION_MEMBER, "annotations/{}/{}.mat"),
                                             (PHOTO_MEMBER, "photos/{}.jpg"),
                                             (LABEL_LIST_MEMBER, "label_list.mat")):
                    match = pattern.fullmatch(name)
                    if match:
                        members[destination.format(*match.groups())] = name
            annotations = sorted(path for path in members if path.startswith("annotations/"))
            pixel_level = [path for path in annotations if path.startswith("annotations/pixel-level/")]
            # A photo with both kinds of annotation is extracted once.
            wanted_photos = sorted({f"photos/{Path(path).stem}.jpg" for path in annotations})
            missing = [path for path in ["label_list.mat", *wanted_photos] if path not in members]
            if not pixel_level or missing:
                problem = "no pixel-level annotations" if not pixel_level else f"no {missing[0]}"
                raise ClothVisionError(
                    f"the archive from {url} has {problem}: it is not the CCP repository; check --url "
                    f"(default {DEFAULT_URL})"
                )
            for path in ["label_list.mat", *annotations, *wanted_photos]:
                (target / path).parent.mkdir(parents=True, exist_ok=True)
                with zip_file.open(members[path]) as source, open(target / path, "wb") as file:
                    shutil.copyfileobj(source, file, CHUNK_BYTES)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise ClothVisionError(
            f"the download from {url} is not an intact zip archive ({error_reason(error)}): "
            "run --download again, or check --url"
        ) from None
    except OSError as error:
        raise ClothVisionError(
            f"could not extract the download into {target} ({error_reason(error)}): free disk space or "
            "make the folder writable, then run --download again"
        ) from None
    extracted = (len(list((target / "photos").iterdir())),
                 len([path for path in (target / "annotations").rglob("*") if path.is_file()]))
    if extracted != (len(wanted_photos), len(annotations)):
        raise ClothVisionError(
            f"extracting {url} gave {extracted[0]} photos and {extracted[1]} annotations, expected "
            f"{len(wanted_photos)} and {len(annotations)}: run --download again"
        )
    return len(pixel_level), len(wanted_photos)


def download_dataset(data_dir: str | os.PathLike, url: str = DEFAULT_URL) -> Path:
    """Download and unpack the dataset into data_dir; it appears there complete or not at all."""
    data_dir = Path(data_dir)
    present = [name for name in DOWNLOADED_ENTRIES if (data_dir / name).exists()]
    if present:
        raise ClothVisionError(
            f"{data_dir} already holds {', '.join(present)} but not a complete dataset: "
            "move those away and run --download again"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    # Staged inside data_dir, so the final moves are renames on one file system.
    with tempfile.TemporaryDirectory(prefix=".download-", dir=data_dir) as staging:
        staging = Path(staging)
        archive = staging / "archive.zip"
        fetch(url, archive, data_dir)
        pixel_level_count, photo_count = extract_annotated_photos(archive, staging / "dataset", url)
        for name in DOWNLOADED_ENTRIES:
            os.replace(staging / "dataset" / name, data_dir / name)
    print(f"downloaded {photo_count} photos into {data_dir}: {pixel_level_count} with pixel-level annotations "
          f"(what preprocess.py uses), {photo_count - pixel_level_count} with image-level tags only")
    return data_dir
