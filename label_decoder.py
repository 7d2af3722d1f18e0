"""Class-index maps -> colour images and the names of the classes in them (the inverse of LabelEncoder)."""

import numpy as np
from PIL import Image

from helpers.colour_space import srgb_to_lab
from label_encoder import ClassPalette, checked_class_indices, generate_palette

OVERLAY_OPACITY = 0.5
BACKGROUND_CLASS = 0
# Below this CIELAB distance (CIE76) two class colours are taken for one in a figure. 2.3 is the just-noticeable
# difference of two large fields side by side; a legend patch or a thin strap is small and needs about twice
# that. A palette that ramps through one hue (the Kaggle class_dict.csv's viridis, 1.9 apart) falls below,
# the generated palette (closest pair 7.9 apart) does not.
MIN_DISTINCT_DELTA_E = 5.0


class LabelDecoder(ClassPalette):
    """Paints index maps with the palette stored in the cache meta or a checkpoint; hard-codes no class."""

    def _checked(self, index_map: np.ndarray) -> np.ndarray:
        index_map = np.asarray(index_map)
        if not np.issubdtype(index_map.dtype, np.integer):
            raise TypeError(f"class-index maps hold integers, got {index_map.dtype}")
        return checked_class_indices(index_map, len(self._class_names), "class-index map")

    def decode(self, index_map: np.ndarray) -> np.ndarray:
        """H×W class indices (numpy or CPU tensor) -> H×W×3 uint8 colours; encode(decode(m)) == m."""
        return self._palette[self._checked(index_map)]

    def classes_in(self, index_map: np.ndarray) -> list[str]:
        """Names of the classes present in the map, in class-index order."""
        counts = np.bincount(self._checked(index_map).ravel(), minlength=len(self._class_names))
        return [self._class_names[index] for index in np.flatnonzero(counts)]

    def closest_colour_distance(self) -> float:
        """The CIELAB distance (CIE76) between the two closest colours of the palette."""
        lab = srgb_to_lab(self._palette)
        distances = np.linalg.norm(lab[:, None] - lab[None], axis=-1)
        np.fill_diagonal(distances, np.inf)
        return float(distances.min())

    def for_figures(self) -> "LabelDecoder":
        """This decoder, or where two of its colours are too close to tell apart, one with the generated
        qualitative palette, for drawing only: files encoded with the dataset's colours keep them."""
        if len(self._class_names) < 2 or self.closest_colour_distance() >= MIN_DISTINCT_DELTA_E:
            return self
        return LabelDecoder(self._class_names, generate_palette(len(self._class_names)))

    def overlay(self, photo: Image.Image, index_map: np.ndarray) -> Image.Image:
        """The RGB photo under the class colours, blended half and half; background pixels (class 0) are
        left as photographed, so the person stands out."""
        index_map = self._checked(index_map)
        blended = Image.blend(photo, Image.fromarray(self._palette[index_map]), OVERLAY_OPACITY)
        background = Image.fromarray(((index_map == BACKGROUND_CLASS) * 255).astype(np.uint8))
        return Image.composite(photo, blended, background)
