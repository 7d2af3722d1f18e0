"""Read any image file PIL understands as an upright RGB picture; write PNGs atomically.

Every way a file can fail to be a usable picture becomes an UnreadableImageError: one line naming
the file, the problem and the fix, plus a short `reason` for reports that list many skipped files.
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from helpers.atomic_files import atomic_write
from helpers.errors import ClothVisionError, error_reason

# Alpha is composited onto white: a cut-out product photo then looks the way a viewer shows it,
# instead of revealing whatever colour the transparent pixels happen to store.
TRANSPARENT_BACKGROUND = (255, 255, 255, 255)
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
HIGH_BIT_DEPTH_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N", "F")


class UnreadableImageError(ClothVisionError):
    """The file exists but is no usable picture; `reason` is the short form for a list of skipped files."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason

    def __reduce__(self):
        # Pickled with both arguments, so the error survives the trip back from a worker process.
        return type(self), (str(self), self.reason)


def read_rgb_image(path: str | Path) -> Image.Image:
    """Decode path fully, turn it upright by its EXIF orientation and convert it to 8-bit RGB."""
    path = Path(path)
    if not path.exists():
        raise ClothVisionError(f"image {path} not found: check the path")
    if path.is_dir():
        raise ClothVisionError(f"image {path} is a folder: pass one image file "
                               "(or predict every image of the folder with --out-dir DIR)")
    try:
        with Image.open(path) as image:
            image.load()
            # Cameras store portrait shots as landscape pixels plus an orientation tag; a person
            # lying on their side would be parsed (and shown) wrongly, so the tag is applied.
            upright = ImageOps.exif_transpose(image)
    except PermissionError:
        raise UnreadableImageError(f"image {path} cannot be read (permission denied): "
                                   "fix its permissions", "permission denied") from None
    except UnidentifiedImageError:
        raise UnreadableImageError(f"{path} is not an image file PIL can read: pass a photo "
                                   "(JPEG, PNG, BMP, TIFF, WebP, ...)", "not an image") from None
    except Image.DecompressionBombError as error:
        raise UnreadableImageError(f"image {path} is too large to decode safely ({error_reason(error)}): "
                                   "downscale it first", "too large") from None
    # PIL's decoders raise many different types on damaged data (OSError, SyntaxError, struct.error, ...).
    except Exception as error:
        raise UnreadableImageError(f"image {path} is corrupt or truncated ({error_reason(error)}): "
                                   "re-export or re-download it", "corrupt or truncated") from None
    try:
        return to_rgb(upright)
    except ValueError as error:
        raise UnreadableImageError(f"image {path} has mode {upright.mode}, which cannot be converted to RGB "
                                   f"({error_reason(error)}): save it as an RGB JPEG or PNG",
                                   f"mode {upright.mode} not supported") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any PIL mode: deep grey levels rescaled, transparency flattened onto white."""
    if image.mode in HIGH_BIT_DEPTH_MODES:
        image = _to_8bit_grey(image)
    if image.mode in ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, TRANSPARENT_BACKGROUND)
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _to_8bit_grey(image: Image.Image) -> Image.Image:
    """PIL's own conversion clips deep values at 255 (a 16-bit photo turns white), so rescale instead.

    Integer modes hold 16-bit samples in practice and are divided by 257 (65535 -> 255) unless they
    never exceed 255; float images have no fixed range and are stretched from their minimum to maximum.
    """
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        low, high = float(values.min()), float(values.max())
        values = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    elif values.max() > 255:
        values = values / 257.0
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))


def write_png(path: str | Path, pixels: np.ndarray | Image.Image) -> Path:
    """Save an image or a uint8 array (HxW -> mode L, HxWx3 -> RGB) as PNG, atomically."""
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(np.ascontiguousarray(pixels))
    return atomic_write(path, lambda temporary: image.save(temporary, format="PNG"))
