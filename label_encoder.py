"""Label files -> H×W uint8 class-index maps: colour images through a palette, .mat annotations directly.

The CCP dataset ships its labels in two forms: MATLAB files holding the class index of every pixel
(`groundtruth`, with the class names in `label_list.mat`), and, in the Kaggle re-packaging, RGB images
painted with one colour per class (`class_dict.csv`). Both end up as the same index map.
"""

import colorsys
import csv
import os
from pathlib import Path

import numpy as np
import scipy.io

from helpers.errors import ClothVisionError, error_reason
from helpers.image_io import read_rgb_image

# Index maps are uint8 and the lookup table marks unknown colours with 255, so 255 classes at most.
UNKNOWN_COLOUR = 255
MAX_CLASSES = 255
GOLDEN_RATIO_CONJUGATE = 0.618033988749895
# Saturation and brightness levels the generated palette cycles through; with golden-ratio hue steps
# they keep 59 colours at least 32 apart in RGB (tests check it).
PALETTE_SATURATIONS = (0.95, 0.65, 0.4)
PALETTE_VALUES = (1.0, 0.8, 0.6)


def generate_palette(num_classes: int) -> list[list[int]]:
    """A fixed palette of distinguishable colours: black for the background (index 0), then hues
    spaced by the golden ratio at alternating saturation and brightness."""
    palette = [[0, 0, 0]]
    for index in range(1, num_classes):
        hue = (index * GOLDEN_RATIO_CONJUGATE) % 1.0
        saturation = PALETTE_SATURATIONS[index % len(PALETTE_SATURATIONS)]
        value = PALETTE_VALUES[(index // len(PALETTE_SATURATIONS)) % len(PALETTE_VALUES)]
        palette.append([round(channel * 255) for channel in colorsys.hsv_to_rgb(hue, saturation, value)])
    return palette


def palette_array(class_names: list[str], palette: list[list[int]], source: str = "palette") -> np.ndarray:
    """Check that names and colours match one-to-one and return the colours as a C×3 uint8 array."""
    try:
        colours = np.asarray(palette)
    except ValueError:
        raise ClothVisionError(f"{source}: palette is not a list of [r, g, b] colours: fix it") from None
    if len(class_names) == 0 or len(class_names) > MAX_CLASSES:
        raise ClothVisionError(
            f"{source}: {len(class_names)} classes, expected 1 to {MAX_CLASSES}: fix the class list"
        )
    if colours.shape != (len(class_names), 3):
        raise ClothVisionError(
            f"{source}: {len(class_names)} class names but palette of shape {colours.shape}: "
            "give one [r, g, b] colour per class"
        )
    if not np.issubdtype(colours.dtype, np.integer) or colours.min() < 0 or colours.max() > 255:
        raise ClothVisionError(f"{source}: palette colours must be integers 0-255: fix the palette")
    packed = pack_rgb(colours.astype(np.uint8))
    _, first_index, counts = np.unique(packed, return_index=True, return_counts=True)
    if (counts > 1).any():
        duplicate = colours[first_index[counts > 1][0]].tolist()
        raise ClothVisionError(
            f"{source}: colour {tuple(duplicate)} belongs to several classes: give every class its own colour"
        )
    return colours.astype(np.uint8)


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """…×3 uint8 colours -> … uint32 keys r + g·2^8 + b·2^16.

    The encoder's hot loop: each pixel's three bytes, plus the next pixel's first byte masked off, are
    read as one little-endian uint32 through an overlapping strided view: a single pass over the image
    with no per-channel temporaries. The last pixel, which has no next byte, is packed on its own.
    """
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    flat = rgb.reshape(-1)
    count = flat.size // 3
    keys = np.empty(count, dtype=np.uint32)
    if count:
        overlapping = np.ndarray((count - 1,), dtype="<u4", buffer=flat, strides=(3,))
        np.bitwise_and(overlapping, 0xFFFFFF, out=keys[:-1])
        red, green, blue = (int(channel) for channel in flat[-3:])
        keys[-1] = red | green << 8 | blue << 16
    return keys.reshape(rgb.shape[:-1])


def unpack_rgb(key: int) -> tuple[int, int, int]:
    return key & 255, (key >> 8) & 255, (key >> 16) & 255


def read_mat_variable(path: str | os.PathLike, variable: str, expected: str) -> np.ndarray:
    """One variable of a MATLAB file; `expected` says in words what the file should be."""
    path = Path(path)
    if not path.is_file():
        raise ClothVisionError(f"{path}: file not found: restore {expected}")
    try:
        contents = scipy.io.loadmat(path, variable_names=[variable])
    except Exception as error:  # scipy raises a dozen unrelated types on foreign or truncated bytes
        raise ClothVisionError(
            f"{path}: not a readable MATLAB .mat file ({error_reason(error)}): replace it with {expected}"
        ) from None
    if variable not in contents:
        raise ClothVisionError(f"{path}: has no '{variable}' variable: replace it with {expected}")
    return contents[variable]


def read_groundtruth_mat(path: str | os.PathLike, num_classes: int) -> np.ndarray:
    """A CCP pixel-level annotation (`groundtruth`, H×W class indices) as a uint8 map, validated."""
    expected = "the dataset's pixel-level annotation (variable 'groundtruth')"
    groundtruth = read_mat_variable(path, "groundtruth", expected)
    if groundtruth.ndim != 2 or not np.issubdtype(groundtruth.dtype, np.number) or groundtruth.size == 0:
        raise ClothVisionError(
            f"{path}: 'groundtruth' is a {groundtruth.dtype} array of shape {groundtruth.shape}, "
            f"not an H×W map of class indices: replace it with {expected}"
        )
    if not np.array_equal(groundtruth, np.round(groundtruth)):
        raise ClothVisionError(
            f"{path}: 'groundtruth' holds fractional values, not class indices: replace it with {expected}"
        )
    return checked_class_indices(groundtruth, num_classes, path)


def checked_class_indices(index_map: np.ndarray, num_classes: int, source: str | os.PathLike) -> np.ndarray:
    """The map as uint8 after checking every index names one of the num_classes classes."""
    if index_map.size == 0:
        return index_map.astype(np.uint8)
    largest, smallest = int(index_map.max()), int(index_map.min())
    outside = largest if largest >= num_classes else smallest
    if outside < 0 or outside >= num_classes:
        count = int(np.count_nonzero(index_map == outside))
        raise ClothVisionError(
            f"{source}: class index {outside} on {count} pixels, but the {num_classes} classes are numbered "
            f"0-{num_classes - 1}: fix the label or use the class list it was made with"
        )
    return index_map.astype(np.uint8)


def read_label_list_mat(path: str | os.PathLike) -> list[str]:
    """The class names of label_list.mat (`label_list`, a 1×C cell of strings, 0 = 'null')."""
    cells = read_mat_variable(path, "label_list", "the dataset's label_list.mat (a 1x59 cell of class names)")
    names = []
    for cell in np.ravel(cells):
        value = np.ravel(cell)
        if value.size != 1 or not isinstance(value[0], str):
            raise ClothVisionError(
                f"{path}: 'label_list' holds {cell!r}, not a class name: "
                "replace it with the dataset's label_list.mat"
            )
        names.append(value[0])
    return names


class ClassPalette:
    """Class names with one distinct colour each, checked one-to-one."""

    def __init__(self, class_names: list[str], palette: list[list[int]], source: str = "palette"):
        self._palette = palette_array(class_names, palette, source)
        self._class_names = [str(name) for name in class_names]

    @property
    def class_names(self) -> list[str]:
        return list(self._class_names)

    @property
    def palette(self) -> list[list[int]]:
        return self._palette.tolist()


class LabelEncoder(ClassPalette):
    """Colour label images -> class-index maps through a palette (one colour per class).

    encode() packs each pixel's colour into a 24-bit integer and looks it up in a 2^24-entry table:
    two vectorized passes over the image, no per-pixel Python (about 500 times faster than a Python
    dictionary lookup per pixel).
    """

    def __init__(self, class_names: list[str], palette: list[list[int]], source: str = "palette"):
        super().__init__(class_names, palette, source)
        self._lookup_table: np.ndarray | None = None

    @classmethod
    def from_class_dict(cls, csv_path: str | os.PathLike) -> "LabelEncoder":
        """From a Kaggle-layout class_dict.csv: a header `class_name,r,g,b`, then one row per class."""
        csv_path = Path(csv_path)
        fix = "fix it or restore the dataset's class_dict.csv (columns class_name,r,g,b)"
        try:
            with open(csv_path, newline="", encoding="utf-8") as handle:
                rows = [row for row in csv.reader(handle) if any(field.strip() for field in row)]
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise ClothVisionError(f"{csv_path}: cannot read ({error_reason(error)}): {fix}") from None
        if not rows or [field.strip().lower() for field in rows[0]] != ["class_name", "r", "g", "b"]:
            header = ",".join(rows[0]) if rows else "nothing"
            raise ClothVisionError(f"{csv_path}: header is '{header}', expected 'class_name,r,g,b': {fix}")
        class_names, palette = [], []
        for line_number, row in enumerate(rows[1:], start=2):
            try:
                name, red, green, blue = (field.strip() for field in row)
                colour = [int(red), int(green), int(blue)]
            except ValueError:
                raise ClothVisionError(
                    f"{csv_path} line {line_number}: '{','.join(row)}' is not 'name,r,g,b' "
                    f"with integer r,g,b: {fix}"
                ) from None
            if not name or not all(0 <= channel <= 255 for channel in colour):
                raise ClothVisionError(
                    f"{csv_path} line {line_number}: '{','.join(row)}' needs a name and r,g,b in 0-255: {fix}"
                )
            class_names.append(name)
            palette.append(colour)
        if not class_names:
            raise ClothVisionError(f"{csv_path}: no classes listed under the header: {fix}")
        return cls(class_names, palette, source=str(csv_path))

    @classmethod
    def from_label_list_mat(cls, path: str | os.PathLike) -> "LabelEncoder":
        """From the original layout's label_list.mat, which has names but no colours: the palette is
        generate_palette()'s fixed one."""
        class_names = read_label_list_mat(path)
        return cls(class_names, generate_palette(len(class_names)), source=str(path))

    @classmethod
    def from_class_file(cls, path: str | os.PathLike) -> "LabelEncoder":
        """From either layout's class list: class_dict.csv (Kaggle) or label_list.mat (original)."""
        if Path(path).suffix.lower() == ".csv":
            return cls.from_class_dict(path)
        return cls.from_label_list_mat(path)

    def _lookup(self) -> np.ndarray:
        # Built on first use (16 MiB) and never pickled: encoders sent to worker processes stay small.
        if self._lookup_table is None:
            table = np.full(1 << 24, UNKNOWN_COLOUR, dtype=np.uint8)
            table[pack_rgb(self._palette)] = np.arange(len(self._palette), dtype=np.uint8)
            self._lookup_table = table
        return self._lookup_table

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_lookup_table": None}

    def encode(self, rgb: np.ndarray, source: str | os.PathLike = "label image") -> np.ndarray:
        """H×W×3 uint8 colours -> H×W uint8 class indices; a colour outside the palette is an error
        naming `source`, the colour and its pixel count."""
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ClothVisionError(
                f"{source}: expected an H×W×3 uint8 colour image, got {rgb.dtype} of shape {rgb.shape}: "
                "save the label as 8-bit RGB"
            )
        packed = pack_rgb(rgb)
        # take(mode="clip") skips the bounds checks of fancy indexing: keys are < 2^24 by construction.
        index_map = self._lookup().take(packed, mode="clip")
        if index_map.max(initial=0) == UNKNOWN_COLOUR:
            colours, counts = np.unique(packed[index_map == UNKNOWN_COLOUR], return_counts=True)
            colour = unpack_rgb(int(colours[np.argmax(counts)]))
            others = f" (and {len(colours) - 1} more unknown colours)" if len(colours) > 1 else ""
            raise ClothVisionError(
                f"{source}: colour {colour} on {int(counts.max())} pixels is not in the palette of "
                f"{len(self._class_names)} classes{others}: repaint those pixels with class colours "
                "or add the colour to class_dict.csv"
            )
        return index_map

    def encode_file(self, path: str | os.PathLike) -> np.ndarray:
        """A label file -> H×W uint8 class indices: a .mat annotation (`groundtruth`) is read and
        range-checked, any image file (.png, ...) is encoded through the palette."""
        path = Path(path)
        if path.suffix.lower() == ".mat":
            return read_groundtruth_mat(path, len(self._class_names))
        return self.encode(np.asarray(read_rgb_image(path)), source=path)
