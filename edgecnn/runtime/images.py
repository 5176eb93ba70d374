"""What users hand the runtime → single images, each a uint8 H×W (grey) or H×W×3 (RGB) array, upright.

How arrays are read (one rule set, also in the README):

- H×W: one grey image. N×H×W: N grey images. H×W×C with C = 1, 3 or 4: ONE image (a camera frame,
  ``np.asarray(Image.open(p))``), never a batch. N×H×W×C: N images.
- A 3-D array whose first and last axes could both be channels (3×28×3), or, for a colour model, one
  that may be channels-first (3×H×W, 4×H×W), is ambiguous and refused: pass H×W×C, or a list of images.
  (For a grey model 3×28×28 is three grey images.)
- uint8 is 0–255; float arrays must lie in [0, 1]. Colour is RGB unless ``channel_order="bgr"`` (OpenCV);
  a fourth channel is alpha, composited onto white (what an image viewer shows).
- PIL images and image file paths: their EXIF orientation is applied first, then alpha is composited
  onto white.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from edgecnn.errors import ImageError, InputError, describe

__all__ = ["IMAGE_FORMATS", "IMAGE_SUFFIXES", "MAX_PIXELS", "CHANNEL_ORDERS", "load_image", "single_images", "upright"]

# Still formats Pillow decodes safely; MPO is how some phones write JPEGs; GIF gives its first frame.
IMAGE_FORMATS = ("PNG", "JPEG", "MPO", "BMP", "WEBP", "TIFF", "GIF")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".mpo", ".bmp", ".webp", ".tif", ".tiff", ".gif")  # directory scans
MAX_PIXELS = 40_000_000  # a 40-megapixel photo is the largest image we decode; bombs claim far more
CHANNEL_ORDERS = ("rgb", "bgr")
_ORIENTATION = 0x0112  # the EXIF tag


def load_image(path: str | os.PathLike[str], *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open an image file upright (EXIF orientation applied), refusing other formats, truncated files
    and decompression bombs (by the header's pixel count, before any pixel is decoded)."""
    try:
        image = Image.open(path)
    except FileNotFoundError as exc:
        raise ImageError(f"{path}: no such file", path=path) from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageError(f"{path}: not a readable image ({type(exc).__name__})", path=path) from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path}: refused as a decompression bomb ({describe(exc)})", path=path) from exc
    if image.format not in IMAGE_FORMATS:
        raise ImageError(f"{path}: {image.format} images are not accepted; use {', '.join(IMAGE_FORMATS)}", path=path)
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(
            f"{path}: {width}×{height} pixels exceeds the {max_pixels:,}-pixel limit "
            "(a decompression bomb, or a photo to downscale first)",
            path=path,
        )
    try:
        image.seek(0)  # an animation's first frame
        image.load()
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # PIL raises SyntaxError for some broken headers
        raise ImageError(f"{path}: truncated or corrupt {image.format} ({describe(exc)})", path=path) from exc
    return upright(image)


def upright(image: Image.Image) -> Image.Image:
    """The image as a viewer shows it: EXIF orientations 2–8 undone (a phone photo is stored sideways)."""
    try:
        orientation = image.getexif().get(_ORIENTATION, 1)
    except (OSError, ValueError, SyntaxError):  # a corrupt EXIF block: the pixels as stored
        return image
    return ImageOps.exif_transpose(image) if orientation not in (1, None) else image


def single_images(images: Any, *, channels: int = 1, channel_order: str = "rgb") -> list[np.ndarray]:
    """Every accepted input form → a list of uint8 H×W or H×W×3 arrays (see the module docstring)."""
    if channel_order not in CHANNEL_ORDERS:
        raise InputError(f"channel_order must be one of {', '.join(CHANNEL_ORDERS)} (got {channel_order!r})")
    if isinstance(images, Image.Image):
        return [_from_pil(images)]
    if isinstance(images, (str, os.PathLike)):
        return [_from_pil(load_image(images))]
    if isinstance(images, (list, tuple)):
        return [one for item in images for one in _list_item(item, channel_order)]
    array = _checked_array(images)
    if array.ndim == 2 or (array.ndim == 3 and _is_single_image(array, channels)):
        return [_from_array(array, channel_order)]
    return [_from_array(single, channel_order) for single in array]


def _list_item(item: Any, channel_order: str) -> list[np.ndarray]:
    if isinstance(item, Image.Image):
        return [_from_pil(item)]
    if isinstance(item, (str, os.PathLike)):
        return [_from_pil(load_image(item))]
    array = _checked_array(item)
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 3, 4)):
        return [_from_array(array, channel_order)]
    raise InputError(f"a list holds single images (H×W or H×W×C); got an item of shape {array.shape}")


def _is_single_image(array: np.ndarray, channels: int) -> bool:
    """3-D: H×W×C (one image) or N×H×W (a batch of grey images)? Refuse what could be either."""
    first, last = array.shape[0], array.shape[-1]
    could_be_channels_first = first in (3, 4) and channels > 1
    if last in (1, 3, 4) and first not in (1, 3, 4):
        return True
    if last not in (1, 3, 4) and not could_be_channels_first:
        return False
    raise InputError(
        f"an array of shape {array.shape} is ambiguous: one image is H×W×C (channels last) or H×W, a batch "
        "N×H×W or N×H×W×C; a channels-first C×H×W image needs .transpose(1, 2, 0), and a list of arrays "
        "is always read as one image per item"
    )


def _from_pil(image: Image.Image) -> np.ndarray:
    image = upright(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(canvas, rgba)
    if image.mode not in ("L", "RGB"):
        image = image.convert("L" if image.mode in ("1", "I", "I;16", "F") else "RGB")
    return np.asarray(image, dtype=np.uint8)


def _from_array(array: np.ndarray, channel_order: str) -> np.ndarray:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        return np.ascontiguousarray(array)
    if channel_order == "bgr":
        array = np.concatenate([array[..., 2::-1], array[..., 3:]], axis=-1)
    if array.shape[-1] == 4:  # alpha onto white, in the same integer arithmetic as Pillow's composite
        return _from_pil(Image.fromarray(np.ascontiguousarray(array), "RGBA"))
    return np.ascontiguousarray(array)


def _checked_array(images: Any) -> np.ndarray:
    try:
        array = np.asarray(images)
    except (ValueError, TypeError) as exc:
        raise InputError(f"cannot read the input as an array: {describe(exc)}") from exc
    if array.dtype == object:
        raise InputError("images must be uint8 or float arrays of one shape (got ragged or mixed data)")
    if array.ndim not in (2, 3, 4):
        raise InputError(f"images must be H×W, H×W×C, N×H×W or N×H×W×C arrays; got shape {array.shape}")
    if array.ndim == 4 and array.shape[-1] not in (1, 3, 4):
        raise InputError(f"N×H×W×C arrays need 1, 3 or 4 channels last; got shape {array.shape}")
    if array.size == 0:
        raise InputError(f"got an empty batch (shape {array.shape}): pass at least one image")
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise InputError(f"images must be uint8 (0–255) or float (0–1) arrays; got dtype {array.dtype}")
    if not np.isfinite(array).all():
        raise InputError("images contain NaN or infinite values")
    if array.min() < 0 or array.max() > 1:
        found = f"{array.min():.3g}…{array.max():.3g}"
        raise InputError(f"float images must lie in [0, 1] (got {found}); pass uint8 arrays for 0–255 pixels")
    return np.rint(array * 255).astype(np.uint8)
