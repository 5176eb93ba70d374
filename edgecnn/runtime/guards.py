"""The input guards: the size limits every image and batch is held to, and the checks of the arrays users pass
(dtype, rank, shape, channels, finite floats in [0, 1]), made from shapes before any pixel is copied.

The same limits hold for a model file's declared input (:func:`size_problem`): a graph that claims a larger image
is refused before anything of its size is allocated. The rules, as users read them: docs/api.md and
:mod:`edgecnn.runtime.images`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from edgecnn.errors import InputError, describe

__all__ = [
    "MAX_PIXELS",
    "MAX_SIDE",
    "MAX_BATCH",
    "MAX_BATCH_BYTES",
    "size_problem",
    "check_count",
    "check_array_size",
    "check_bytes",
    "is_single_image",
    "checked_array",
    "uint8_images",
]

MAX_PIXELS = 40_000_000  # a 40-megapixel photo is the largest image we decode; bombs claim far more
# A 200-megapixel phone sensor is 16,320 pixels wide (and WEBP stops at 16,383); a longer side is a strip, not a
# photo, and framing it costs memory by its side (fit="object" pads it to a square: 1×40M pixels asks for petabytes).
MAX_SIDE = 16_384
MAX_BATCH = 4096  # images per call: larger batches are refused rather than allocated
# Array data per call. It holds 4096 RGB images of 256×256 as uint8 (805 MB) or one 40-megapixel RGB photo as float64
# (960 MB); beyond it conversion alone takes seconds and gigabytes (BENCHMARKS.md, "The input guards").
MAX_BATCH_BYTES = 1 << 30
_CHUNK_BYTES = 64 << 20  # float batches are converted this much at a time: bounded temporaries
# What an object's __array__ (or a ragged list) makes np.asarray raise.
_ARRAY_ERRORS = (OSError, ValueError, SyntaxError, EOFError, TypeError, LookupError, ArithmeticError)


def size_problem(width: int, height: int, max_pixels: int = MAX_PIXELS) -> str | None:
    """Why an image of this size is refused (None: it is not). The one size rule for arrays and PIL images."""
    if width == 0 or height == 0:
        return f"an empty image ({width}×{height} pixels): pass an image with pixels"
    if width * height > max_pixels:
        return f"{width}×{height} pixels exceeds the {max_pixels:,}-pixel limit per image: downscale it first"
    if max(width, height) > MAX_SIDE:
        return f"{width}×{height} pixels exceeds the {MAX_SIDE:,}-pixel limit per side: crop or downscale it first"
    return None


def check_count(count: int) -> None:
    if count > MAX_BATCH:
        raise InputError(f"batch of {count} images exceeds the limit of {MAX_BATCH}: pass smaller batches")


def check_array_size(batch: np.ndarray, used: int) -> int:
    """N×H×W(×C) → the bytes used so far with this batch's; refused from the shape alone, before any copy."""
    check_count(len(batch))
    problem = size_problem(batch.shape[2], batch.shape[1])
    if problem:
        raise InputError(f"an image of {problem}" if problem[0].isdigit() else problem)
    return check_bytes(used + math.prod(batch.shape) * batch.itemsize)


def check_bytes(used: int) -> int:
    if used > MAX_BATCH_BYTES:
        raise InputError(
            f"the images hold {used / 2**20:,.0f} MiB of array data, over the limit of {MAX_BATCH_BYTES >> 20:,} MiB "
            "per call: pass smaller batches, smaller images, or uint8 pixels rather than floats"
        )
    return used


def is_single_image(array: np.ndarray, channels: int) -> bool:
    """3-D: H×W×C (one image) or N×H×W (a batch of grey images)? Refuse what could be either, and an H×W×K
    whose last axis, smaller than the others, is a channel count we do not read (2, 5, …)."""
    first, middle, last = array.shape
    could_be_channels_first = first in (3, 4) and channels > 1
    if last in (1, 3, 4) and first not in (1, 3, 4):
        return True
    if last not in (1, 3, 4) and last < min(first, middle):  # H×W×K: an image of K channels, none we read
        raise InputError(
            f"an array of shape {array.shape} reads as one image of {last} channels; images have 1 (grey), 3 (RGB) "
            "or 4 (RGBA) channels last: convert it first (x[..., :3] if its first three are RGB). A batch of grey "
            "images this narrow passes as N×H×W×1 (x[..., None]) or as a list"
        )
    if last not in (1, 3, 4) and not could_be_channels_first:
        return False
    raise InputError(
        f"an array of shape {array.shape} is ambiguous: one image is H×W×C (channels last) or H×W, a batch "
        "N×H×W or N×H×W×C; a channels-first C×H×W image needs .transpose(1, 2, 0), and a list of arrays "
        "is always read as one image per item"
    )


def checked_array(images: Any) -> np.ndarray:
    """Anything array-like → an ndarray of an accepted dtype and rank, without copying an ndarray."""
    try:
        array = np.asarray(images)
    except _ARRAY_ERRORS as exc:  # ragged lists (ValueError), and whatever an object's __array__ raises
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


def uint8_images(batch: np.ndarray) -> Iterator[np.ndarray]:
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
