"""What users hand the runtime → single images, each a uint8 H×W (grey) or H×W×3 (RGB) array, upright.

How arrays are read (one rule set, also in docs/api.md):

- H×W: one grey image. N×H×W: N grey images. H×W×C with C = 1, 3 or 4: ONE image (a camera frame,
  ``np.asarray(Image.open(p))``), never a batch. N×H×W×C: N images.
- A 3-D array whose first and last axes could both be channels (3×28×3), or, for a colour model, one
  that may be channels-first (3×H×W, 4×H×W), is ambiguous and refused: pass H×W×C, or a list of images.
  (For a grey model 3×28×28 is three grey images.)
- uint8 is 0–255; float arrays (float16, float32, float64) must lie in [0, 1]. Every other dtype is refused,
  not guessed: bool, int8–int64, uint16 (8, 10, 12 or 16 bits?), complex, object, strings. Colour is RGB
  unless ``channel_order="bgr"`` (OpenCV); a fourth channel is alpha, composited onto white (what a viewer shows).
- PIL images and image file paths: their EXIF orientation is applied first, then alpha is composited
  onto white. L and RGB are read as they are; RGBA, LA, La, PA, RGBa and P, L or RGB with a transparent
  colour are composited; I;16 (16-bit files) is scaled to 8 bits; 1, I and F become L the way Pillow
  converts them (I and F values read as 0–255); CMYK, YCbCr, HSV, LAB, RGBX and P become RGB. A mode
  Pillow cannot convert is an :class:`ImageError` naming it.

One guard for every input, checked from shapes and headers before any pixel is copied or decoded: at most
MAX_PIXELS pixels and MAX_SIDE pixels a side per image, MAX_BATCH images per call, MAX_BATCH_BYTES of array
data per call (a broadcast view counts at its full size). A PIL image, handed over or opened here from a file,
must be of a format in IMAGE_FORMATS (when it came from a file), not empty, and decode without error (a
truncated or corrupt file is an ImageError). Files and PIL images are decoded one at a time as the batch is
framed, so they count per image, not towards MAX_BATCH_BYTES.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from edgecnn.errors import ImageError, InputError, describe
from edgecnn.runtime.guards import (
    MAX_BATCH,
    MAX_BATCH_BYTES,
    MAX_PIXELS,
    MAX_SIDE,
    check_array_size,
    check_bytes,
    check_count,
    checked_array,
    is_single_image,
    size_problem,
    uint8_images,
)

__all__ = [
    "IMAGE_FORMATS",
    "IMAGE_SUFFIXES",
    "FOLDER_SUFFIXES",
    "MAX_PIXELS",
    "MAX_SIDE",
    "MAX_BATCH",
    "MAX_BATCH_BYTES",
    "CHANNEL_ORDERS",
    "PIL_ERRORS",
    *("load_image", "checked_image", "image_batch", "upright"),
]

# Still formats Pillow decodes safely; MPO is how some phones write JPEGs; GIF gives its first frame.
IMAGE_FORMATS = ("PNG", "JPEG", "MPO", "BMP", "WEBP", "TIFF", "GIF")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".mpo", ".bmp", ".webp", ".tif", ".tiff", ".gif")  # what predict lists
# A training or calibration folder's files: those and PGM/PPM (old datasets; torchvision's ImageFolder lists them),
# which are decoded as pixels though the runtime refuses to be handed such a file (edgecnn.data.folders).
FOLDER_SUFFIXES = (*IMAGE_SUFFIXES, ".ppm", ".pgm")
CHANNEL_ORDERS = ("rgb", "bgr")
# What Pillow raises on corrupt data (besides DecompressionBombError): seen fuzzing mutated files of every accepted
# format (TIFF tags give TypeError) and raised by its parsers (struct.error, IndexError, KeyError, ZeroDivisionError).
PIL_ERRORS = (OSError, ValueError, SyntaxError, EOFError, TypeError, LookupError, ArithmeticError, struct.error)
_ORIENTATION = 0x0112  # the EXIF tag


def load_image(
    path: str | os.PathLike[str], *, max_pixels: int = MAX_PIXELS, formats: tuple[str, ...] | None = IMAGE_FORMATS
) -> Image.Image:
    """Open an image file upright (EXIF applied), refusing formats not in ``formats`` (None: any Pillow decodes,
    for training folders), truncated files and decompression bombs (by the header's pixel count, before decoding)."""
    with _pil_errors(str(path), "not a readable image", path):
        _refuse_special(path)
        image = Image.open(path)
    try:
        return checked_image(image, max_pixels=max_pixels, path=path, first_frame=True, formats=formats)
    except BaseException:
        image.close()  # a folder of broken files must not hold one open file each until the collector runs
        raise


def _refuse_special(path: str | os.PathLike[str]) -> None:
    """A folder, a FIFO (whose open waits for a writer, for ever), a device or a socket is not an image file."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
        raise ImageError(f"{path}: {kind}, not an image file", path=path)


def checked_image(
    image: Image.Image,
    *,
    max_pixels: int = MAX_PIXELS,
    path: str | os.PathLike[str] | None = None,
    first_frame: bool = False,
    formats: tuple[str, ...] | None = IMAGE_FORMATS,
) -> Image.Image:
    """The guard every PIL image passes, handed over or opened by :func:`load_image`: a format in
    ``formats`` (if it came from a file), not empty, within the pixel caps (from the header, before
    decoding), decoded without error (``first_frame``: an animation's first frame), then upright."""
    name = _name(image, path)
    if image.format is not None and formats is not None and image.format not in formats:
        raise ImageError(f"{name}: {image.format} images are not accepted; use {', '.join(IMAGE_FORMATS)}", path=path)
    width, height = image.size
    problem = size_problem(width, height, max_pixels)
    if problem:
        raise ImageError(f"{name}: {problem}", path=path)
    with _pil_errors(name, f"truncated or corrupt {image.format or image.mode} image", path):
        if first_frame:
            image.seek(0)
        image.load()
    return upright(image)


def upright(image: Image.Image) -> Image.Image:
    """The image as a viewer shows it: EXIF orientations 2–8 undone (a phone photo is stored sideways)."""
    try:
        orientation = image.getexif().get(_ORIENTATION, 1)
        return ImageOps.exif_transpose(image) if orientation not in (1, None) else image
    except PIL_ERRORS:  # a corrupt EXIF block: the pixels as stored
        return image


def image_batch(images: Any, *, channels: int = 1, channel_order: str = "rgb") -> tuple[int, Iterator[np.ndarray]]:
    """Every accepted input form → (how many images, an iterator of uint8 H×W or H×W×3 arrays). Counts,
    dtypes, shapes and array sizes are checked here, before anything is converted; the iterator decodes
    files and PIL images one at a time (each through :func:`checked_image`) as it is consumed."""
    if channel_order not in CHANNEL_ORDERS:
        raise InputError(f"channel_order must be one of {', '.join(CHANNEL_ORDERS)} (got {channel_order!r})")
    if isinstance(images, (Image.Image, str, os.PathLike)):
        images = [images]
    if isinstance(images, (list, tuple)):
        if not images:
            raise InputError("got an empty batch: pass at least one image")
        check_count(len(images))
        check_bytes(sum(item.nbytes for item in images if isinstance(item, np.ndarray)))  # before any work
        return len(images), _list_images(images, channel_order)
    array = checked_array(images)
    single = array.ndim == 2 or (array.ndim == 3 and is_single_image(array, channels))
    batch = array[None] if single else array
    check_array_size(batch, 0)
    return len(batch), (_from_array(one, channel_order) for one in uint8_images(batch))


def _list_images(items: list[Any] | tuple[Any, ...], channel_order: str) -> Iterator[np.ndarray]:
    used = 0  # array bytes so far: the whole list shares MAX_BATCH_BYTES
    for item in items:
        if isinstance(item, (Image.Image, str, os.PathLike)):
            yield _pil_item(item)
            continue
        array = checked_array(item)
        if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 3, 4))):
            raise InputError(f"a list holds single images (H×W or H×W×C); got an item of shape {array.shape}")
        used = check_array_size(array[None], used)
        yield from (_from_array(one, channel_order) for one in uint8_images(array[None]))


def _pil_item(item: Image.Image | str | os.PathLike[str]) -> np.ndarray:
    if isinstance(item, Image.Image):
        path = getattr(item, "filename", "") or None  # Image.open's file, named in the errors
        return _from_pil(checked_image(item, path=path), _name(item, path), path)
    return _from_pil(load_image(item), str(item), item)


def _name(image: Image.Image, path: str | os.PathLike[str] | None) -> str:
    return str(path) if path is not None else f"a PIL image (mode {image.mode})"


@contextmanager
def _pil_errors(name: str, failure: str, path: str | os.PathLike[str] | None) -> Iterator[None]:
    """Whatever Pillow raises on a missing, refused, corrupt or unconvertible image → one ImageError line."""
    try:
        yield
    except FileNotFoundError as exc:
        raise ImageError(f"{name}: no such file", path=path) from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name}: refused as a decompression bomb ({describe(exc)})", path=path) from exc
    except PIL_ERRORS as exc:
        raise ImageError(f"{name}: {failure} ({describe(exc)})", path=path) from exc


def _from_pil(image: Image.Image, name: str, path: str | os.PathLike[str] | None) -> np.ndarray:
    """A checked, decoded PIL image → uint8 L or RGB pixels (the modes as the module docstring says)."""
    with _pil_errors(name, f"cannot convert a {image.mode} image to L or RGB; save it as RGB or greyscale", path):
        if image.mode.startswith("I;16"):  # 16-bit grey: Pillow's own conversion would clip it to white
            return (np.asarray(image) >> 8).astype(np.uint8)
        if image.mode == "F" and not np.isfinite(np.asarray(image)).all():  # Pillow would make NaN 0 and inf 255
            raise ImageError(f"{name}: a float (mode F) image holding NaN or infinite values", path=path)
        if image.mode == "La":
            image = image.convert("LA")  # premultiplied grey: Pillow converts it to LA only
        if image.has_transparency_data:
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        if image.mode not in ("L", "RGB"):
            image = image.convert("L" if image.mode in ("1", "I", "F") else "RGB")
        return np.asarray(image, dtype=np.uint8)


def _from_array(array: np.ndarray, channel_order: str) -> np.ndarray:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        return np.ascontiguousarray(array)
    if channel_order == "bgr":
        array = np.concatenate([array[..., 2::-1], array[..., 3:]], axis=-1)
    if array.shape[-1] == 4:  # alpha onto white, in the same integer arithmetic as Pillow's composite
        return _from_pil(Image.fromarray(np.ascontiguousarray(array)), "an RGBA array", None)
    return np.ascontiguousarray(array)
