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

import math
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from edgecnn.errors import ImageError, InputError, describe

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
MAX_PIXELS = 40_000_000  # a 40-megapixel photo is the largest image we decode; bombs claim far more
# A 200-megapixel phone sensor is 16,320 pixels wide (and WEBP stops at 16,383); a longer side is a strip, not a
# photo, and framing it costs memory by its side (fit="object" pads it to a square: 1×40M pixels asks for petabytes).
MAX_SIDE = 16_384
MAX_BATCH = 4096  # images per call: larger batches are refused rather than allocated
# Array data per call. It holds 4096 RGB images of 256×256 as uint8 (805 MB) or one 40-megapixel RGB photo as float64
# (960 MB); beyond it conversion alone takes seconds and gigabytes (BENCHMARKS.md, "The input guards").
MAX_BATCH_BYTES = 1 << 30
_CHUNK_BYTES = 64 << 20  # float batches are converted this much at a time: bounded temporaries
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
        image = Image.open(path)
    try:
        return checked_image(image, max_pixels=max_pixels, path=path, first_frame=True, formats=formats)
    except BaseException:
        image.close()  # a folder of broken files must not hold one open file each until the collector runs
        raise


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
    problem = _size_problem(width, height, max_pixels)
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
        _check_count(len(images))
        _check_bytes(sum(item.nbytes for item in images if isinstance(item, np.ndarray)))  # before any work
        return len(images), _list_images(images, channel_order)
    array = _checked_array(images)
    single = array.ndim == 2 or (array.ndim == 3 and _is_single_image(array, channels))
    batch = array[None] if single else array
    _check_array_size(batch, 0)
    return len(batch), (_from_array(one, channel_order) for one in _uint8_images(batch))


def _list_images(items: list[Any] | tuple[Any, ...], channel_order: str) -> Iterator[np.ndarray]:
    used = 0  # array bytes so far: the whole list shares MAX_BATCH_BYTES
    for item in items:
        if isinstance(item, (Image.Image, str, os.PathLike)):
            yield _pil_item(item)
            continue
        array = _checked_array(item)
        if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 3, 4))):
            raise InputError(f"a list holds single images (H×W or H×W×C); got an item of shape {array.shape}")
        used = _check_array_size(array[None], used)
        yield from (_from_array(one, channel_order) for one in _uint8_images(array[None]))


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


def _size_problem(width: int, height: int, max_pixels: int = MAX_PIXELS) -> str | None:
    """Why an image of this size is refused (None: it is not). The one size rule for arrays and PIL images."""
    if width == 0 or height == 0:
        return f"an empty image ({width}×{height} pixels): pass an image with pixels"
    if width * height > max_pixels:
        return f"{width}×{height} pixels exceeds the {max_pixels:,}-pixel limit per image: downscale it first"
    if max(width, height) > MAX_SIDE:
        return f"{width}×{height} pixels exceeds the {MAX_SIDE:,}-pixel limit per side: crop or downscale it first"
    return None


def _check_count(count: int) -> None:
    if count > MAX_BATCH:
        raise InputError(f"batch of {count} images exceeds the limit of {MAX_BATCH}: pass smaller batches")


def _check_array_size(batch: np.ndarray, used: int) -> int:
    """N×H×W(×C) → the bytes used so far with this batch's; refused from the shape alone, before any copy."""
    _check_count(len(batch))
    problem = _size_problem(batch.shape[2], batch.shape[1])
    if problem:
        raise InputError(f"an image of {problem}" if problem[0].isdigit() else problem)
    return _check_bytes(used + math.prod(batch.shape) * batch.itemsize)


def _check_bytes(used: int) -> int:
    if used > MAX_BATCH_BYTES:
        raise InputError(
            f"the images hold {used / 2**20:,.0f} MiB of array data, over the limit of {MAX_BATCH_BYTES >> 20:,} MiB "
            "per call: pass smaller batches, smaller images, or uint8 pixels rather than floats"
        )
    return used


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


def _from_pil(image: Image.Image, name: str, path: str | os.PathLike[str] | None) -> np.ndarray:
    """A checked, decoded PIL image → uint8 L or RGB pixels (the modes as the module docstring says)."""
    with _pil_errors(name, f"cannot convert a {image.mode} image to L or RGB; save it as RGB or greyscale", path):
        if image.mode.startswith("I;16"):  # 16-bit grey: Pillow's own conversion would clip it to white
            return (np.asarray(image) >> 8).astype(np.uint8)
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


def _checked_array(images: Any) -> np.ndarray:
    """Anything array-like → an ndarray of an accepted dtype and rank, without copying an ndarray."""
    try:
        array = np.asarray(images)
    except PIL_ERRORS as exc:  # ragged lists (ValueError), and whatever an object's __array__ raises
        raise InputError(f"cannot read the input as an array: {describe(exc)}") from exc
    if array.dtype == object:
        raise InputError("images must be uint8 or float arrays of one shape (got ragged or mixed data)")
    if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
        raise InputError(
            f"images must be uint8 (0–255) or float (0–1) arrays; got dtype {array.dtype}: convert it first, "
            "e.g. (x // 256).astype(np.uint8) for 16-bit pixels or x.astype(np.uint8) * 255 for a bool mask"
        )
    if array.ndim not in (2, 3, 4):
        raise InputError(f"images must be H×W, H×W×C, N×H×W or N×H×W×C arrays; got shape {array.shape}")
    if array.ndim == 4 and array.shape[-1] not in (1, 3, 4):
        raise InputError(f"N×H×W×C arrays need 1, 3 or 4 channels last; got shape {array.shape}")
    if array.size == 0:
        raise InputError(f"got an empty batch or image (shape {array.shape}): pass at least one image with pixels")
    return array


def _uint8_images(batch: np.ndarray) -> Iterator[np.ndarray]:
    """N×H×W(×C) uint8 or [0, 1] float → its uint8 images, floats checked and converted a chunk at a time."""
    if batch.dtype == np.uint8:
        yield from batch
        return
    step = max(1, _CHUNK_BYTES // batch[0].nbytes)
    for start in range(0, len(batch), step):
        yield from _floats_to_uint8(batch[start : start + step])


def _floats_to_uint8(array: np.ndarray) -> np.ndarray:
    if not np.isfinite(array).all():
        raise InputError("images contain NaN or infinite values")
    low, high = array.min(), array.max()
    if low < 0 or high > 1:
        found = f"{low:.3g}…{high:.3g}"
        raise InputError(f"float images must lie in [0, 1] (got {found}); pass uint8 arrays for 0–255 pixels")
    return np.rint(array * 255).astype(np.uint8)
