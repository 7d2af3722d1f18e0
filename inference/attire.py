"""What a person wears, in words a person reads and searches: "grey coat, white pants, red shoes".

describe_class_map() needs only a class map at the photo's own size and the photo, so a model's prediction
and a ground-truth label are described by the same code. Garments are the classes of the garment groups
(every group but background, skin and hair), largest first; each gets its share of the person's pixels (all
pixels but the background) and its dominant colour, measured on the photo (inference/colour_names.py).
From a prediction, garments under a minimum share are dropped as noise; from a label, every garment present
is listed. Descriptions are written as JSON Lines, one photo per line, and read back by searches, so a
folder is described once.
"""

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from evaluation.garment_groups import BACKGROUND_GROUP, GarmentGroups, garment_groups_for
from helpers.atomic_files import atomic_write_text
from helpers.errors import ClothVisionError
from helpers.image_io import UnreadableImageError, read_rgb_image
from inference.colour_names import garment_colour
from inference.dataset_labels import dataset_label_and_decoder, read_label
from inference.predictor import SegmentationPredictor
from inference.provenance import FROM_LABELS, file_sha256
from label_decoder import LabelDecoder

# A predicted garment smaller than this share of the person's pixels is taken for noise. On a CCP photo
# (550×830, the person about a quarter of it) 1 % is ~1100 pixels: a shoe keeps its place, stray
# specks of a wrong class do not (labels are exact and keep every garment).
DEFAULT_MINIMUM_SHARE = 0.01
# Colour sampling is seeded, so a photo always gets the same words.
COLOUR_SEED = 0
SHARE_DECIMALS = 5
NO_GARMENTS = "no garments found"


@dataclass(frozen=True)
class Garment:
    name: str
    group: str
    colour: str
    rgb: tuple[int, int, int]
    share: float

    def words(self) -> str:
        return f"{self.colour} {self.name}"


@dataclass(frozen=True)
class PhotoDescription:
    image: str  # the photo's file name, as printed
    path: str  # where the photo was read, to redraw it from a descriptions file
    source: str  # "prediction" or "label"
    garments: tuple[Garment, ...]
    checkpoint: str | None = None  # the checkpoint that predicted the class map, or "labels"; None in old files
    checkpoint_sha256: str | None = None  # of that checkpoint's file, to refuse redrawing with another

    def text(self) -> str:
        return ", ".join(garment.words() for garment in self.garments) or NO_GARMENTS

    def record(self) -> dict:
        """The JSON object of one photo; garments as {name, group, colour, rgb, share}."""
        return {"image": self.image, "path": self.path, "source": self.source, "checkpoint": self.checkpoint,
                "checkpoint_sha256": self.checkpoint_sha256,
                "garments": [{**asdict(garment), "rgb": list(garment.rgb)} for garment in self.garments]}


def describe_class_map(class_map: np.ndarray, photo: Image.Image, groups: GarmentGroups,
                       minimum_share: float = 0.0) -> tuple[Garment, ...]:
    """The garments of an H×W class map over the RGB photo of the same size, largest first."""
    pixels = np.asarray(photo.convert("RGB"))
    if class_map.shape != pixels.shape[:2]:
        raise ValueError(f"class map of shape {class_map.shape} for a photo of {pixels.shape[1]}x{pixels.shape[0]}")
    flat_map, flat_pixels = class_map.ravel(), pixels.reshape(-1, 3)
    counts = np.bincount(flat_map, minlength=len(groups.class_names))
    person = np.array([group != BACKGROUND_GROUP for group in groups.group_of_class])
    person_pixels = int(counts[person].sum())
    if person_pixels == 0:
        return ()
    shares = counts / person_pixels
    kept = np.flatnonzero((counts > 0) & groups.garment_classes & (shares >= minimum_share))
    rng = np.random.default_rng(COLOUR_SEED)
    garments = []
    for class_index in sorted(kept, key=lambda index: (-counts[index], index)):
        colour, rgb = garment_colour(flat_pixels, np.flatnonzero(flat_map == class_index), rng)
        garments.append(Garment(groups.class_names[class_index], groups.group_of_class[class_index], colour,
                                tuple(rgb), round(float(shares[class_index]), SHARE_DECIMALS)))
    return tuple(garments)


class PredictionSource:
    """Class maps predicted by a checkpoint's model."""

    name = "prediction"

    def __init__(self, predictor: SegmentationPredictor, minimum_share: float = DEFAULT_MINIMUM_SHARE):
        self.predictor, self.minimum_share = predictor, minimum_share
        self.groups = garment_groups_for(predictor.decoder.class_names)
        self.checkpoint = str(predictor.checkpoint_path)

    @property
    def checkpoint_sha256(self) -> str:
        return file_sha256(self.checkpoint)

    def class_map(self, image_file: Path, image: Image.Image) -> tuple[np.ndarray, LabelDecoder, GarmentGroups]:
        return self.predictor.predict(image), self.predictor.decoder, self.groups


class LabelSource:
    """The ground-truth labels of dataset photos, with their dataset's own classes; no model needed."""

    name = "label"
    minimum_share = 0.0
    checkpoint, checkpoint_sha256 = FROM_LABELS, None

    def class_map(self, image_file: Path, image: Image.Image) -> tuple[np.ndarray, LabelDecoder, GarmentGroups]:
        label_file, decoder = dataset_label_and_decoder(image_file)
        label = read_label(label_file, decoder, image_file, image.size)
        return label, decoder, garment_groups_for(decoder.class_names)


ClassMapSource = PredictionSource | LabelSource


@dataclass
class DescribedPhoto:
    """A description with what it was made from, for figures."""

    description: PhotoDescription
    image: Image.Image
    class_map: np.ndarray
    decoder: LabelDecoder


def describe_photo(image_file: str | Path, source: ClassMapSource) -> DescribedPhoto:
    image_file = Path(image_file)
    image = read_rgb_image(image_file)
    class_map, decoder, groups = source.class_map(image_file, image)
    garments = describe_class_map(class_map, image, groups, source.minimum_share)
    description = PhotoDescription(image_file.name, str(image_file), source.name, garments, source.checkpoint,
                                   source.checkpoint_sha256)
    return DescribedPhoto(description, image, class_map, decoder)


def files_in(folder: Path) -> list[Path]:
    """The files directly in folder, hidden files and subfolders aside, sorted; an empty folder is an error."""
    files = sorted(path for path in folder.iterdir() if path.is_file() and not path.name.startswith("."))
    if not files:
        raise ClothVisionError(f"folder {folder} holds no files: pass a folder of images")
    return files


def describe_files(image_files: list[Path], source: ClassMapSource,
                   ) -> tuple[list[PhotoDescription], list[tuple[Path, UnreadableImageError]]]:
    """Descriptions of every readable image (the photos themselves are not kept), and the files skipped."""
    descriptions, skipped = [], []
    for image_file in tqdm(image_files, desc="Describing", unit="image", disable=len(image_files) < 2):
        try:
            descriptions.append(describe_photo(image_file, source).description)
        except UnreadableImageError as error:
            skipped.append((image_file, error))
    return descriptions, skipped


def skipped_summary(skipped: list[tuple[Path, UnreadableImageError]]) -> str:
    listed = ", ".join(f"{path.name} ({error.reason})" for path, error in skipped)
    return f"Skipped {len(skipped)} files that are not readable images: {listed}"


def no_readable_image_error(folder: Path, skipped: list[tuple[Path, UnreadableImageError]]) -> ClothVisionError:
    first_path, first_error = skipped[0]
    return ClothVisionError(f"folder {folder} holds no readable image ({len(skipped)} files skipped, e.g. "
                            f"{first_path.name}: {first_error.reason}): pass a folder of photos")


def describe_path(path: Path, source: ClassMapSource,
                  ) -> tuple[list[PhotoDescription], list[tuple[Path, UnreadableImageError]]]:
    """One photo, or every readable image of a folder, and the files skipped; a folder without any readable
    image is an error."""
    if not path.is_dir():
        return [describe_photo(path, source).description], []
    descriptions, skipped = describe_files(files_in(path), source)
    if not descriptions:
        raise no_readable_image_error(path, skipped)
    return descriptions, skipped


def write_descriptions(path: str | Path, descriptions: list[PhotoDescription]) -> Path:
    """JSON Lines: one photo's object per line."""
    return atomic_write_text(path, "".join(json.dumps(item.record()) + "\n" for item in descriptions))


def _garment_from(record: dict) -> Garment:
    red, green, blue = (int(channel) for channel in record["rgb"])
    return Garment(str(record["name"]), str(record["group"]), str(record["colour"]), (red, green, blue),
                   float(record["share"]))


def read_descriptions(path: str | Path) -> list[PhotoDescription]:
    """The descriptions a --json run wrote; anything else is refused with the line at fault."""
    path = Path(path)
    fix = "pass a file written by img_test.py --describe --json FILE"
    descriptions = []
    for line_number, line in _numbered_lines(path, fix):
        try:
            record = json.loads(line)
            descriptions.append(PhotoDescription(str(record["image"]), str(record["path"]), str(record["source"]),
                                                 tuple(_garment_from(item) for item in record["garments"]),
                                                 record.get("checkpoint"), record.get("checkpoint_sha256")))
        except (ValueError, KeyError, TypeError) as error:
            raise ClothVisionError(f"{path} line {line_number} is not a photo description "
                                   f"({type(error).__name__}: {error}): {fix}") from None
    if not descriptions:
        raise ClothVisionError(f"{path} holds no description: {fix}")
    return descriptions


def _numbered_lines(path: Path, fix: str) -> Iterator[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ClothVisionError(f"{path} cannot be read ({type(error).__name__}): {fix}") from None
    return ((number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip())
