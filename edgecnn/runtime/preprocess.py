"""numpy + Pillow preprocessing: pixels → the model's input tensor. One definition for runtime and parity.

The arithmetic is torchvision's ``ToTensor`` + ``Normalize`` in float32 (divide by 255, subtract the
mean, divide by the std), so a float graph fed from here sees bit-identical input to the training loop.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgecnn.errors import ImageError, InputError, describe
from edgecnn.runtime.metadata import InputSpec

__all__ = [
    "normalize",
    "to_graph_input",
    "load_image",
    "to_model_pixels",
    "invert_light_backgrounds",
    "IMAGE_FORMATS",
    "MAX_PIXELS",
    "MAX_BATCH",
]


def normalize(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 N×C×H×W → float32 N×C×H×W, normalised per channel."""
    shape = (1, -1, 1, 1)
    mean_ = np.asarray(mean, dtype=np.float32).reshape(shape)
    std_ = np.asarray(std, dtype=np.float32).reshape(shape)
    return ((images.astype(np.float32) / np.float32(255)) - mean_) / std_


def to_graph_input(images: np.ndarray, spec: InputSpec, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 N×C×H×W → what the graph takes: raw NHW/NHWC uint8 if preprocessing is baked in,
    else normalised float32 NCHW."""
    if not spec.baked:
        return normalize(images, mean, std)
    if spec.layout == "NHW":
        return np.ascontiguousarray(images[:, 0])
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1))


# ---- images and arrays from users → uint8 N×C×H×W at the model's size -------------------------------

IMAGE_FORMATS = ("PNG", "JPEG", "BMP")
MAX_PIXELS = 40_000_000  # a 40-megapixel photo is the largest image we decode; bombs claim far more
MAX_BATCH = 4096  # larger batches are refused rather than allocated


def load_image(path: str | os.PathLike[str], *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open a PNG, JPEG or BMP file, refusing other formats, truncated files and decompression bombs."""
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
    if width * height > max_pixels:  # checked from the header, before any pixel is decoded
        raise ImageError(
            f"{path}: {width}×{height} pixels exceeds the {max_pixels:,}-pixel limit "
            "(a decompression bomb, or a photo to downscale first)",
            path=path,
        )
    try:
        image.load()
    except (OSError, ValueError, SyntaxError) as exc:  # PIL raises SyntaxError for some broken headers
        raise ImageError(f"{path}: truncated or corrupt {image.format} ({describe(exc)})", path=path) from exc
    return image


def to_model_pixels(images: Any, shape: tuple[int, int, int]) -> np.ndarray:
    """PIL images, or uint8 / float (in [0, 1]) arrays shaped H×W, N×H×W or N×H×W×C (or a list of
    single images) → uint8 N×C×H×W, converted to the model's channels and resized to its H×W."""
    channels, height, width = shape
    if isinstance(images, np.ndarray):  # the camera path: already the model's size, no PIL round trip
        array = _checked_array(images)
        batch = array[None] if array.ndim == 2 else array
        if len(batch) > MAX_BATCH:
            raise InputError(f"batch of {len(batch)} images exceeds the limit of {MAX_BATCH}")
        if channels == 1 and batch.shape[1:] == (height, width):
            return np.ascontiguousarray(batch[:, None])
        if channels > 1 and batch.shape[1:] == (height, width, channels):
            return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
    singles = _as_single_images(images)
    if not singles:
        raise InputError("got an empty batch: pass at least one image")
    if len(singles) > MAX_BATCH:
        raise InputError(f"batch of {len(singles)} images exceeds the limit of {MAX_BATCH}")
    mode = "L" if channels == 1 else "RGB"
    out = np.empty((len(singles), channels, height, width), dtype=np.uint8)
    for i, single in enumerate(singles):
        picture = single if isinstance(single, Image.Image) else Image.fromarray(single)
        if picture.mode != mode:
            picture = picture.convert(mode)
        if picture.size != (width, height):
            picture = picture.resize((width, height), Image.BILINEAR)
        out[i] = np.asarray(picture, dtype=np.uint8).reshape(height, width, channels).transpose(2, 0, 1)
    return out


def invert_light_backgrounds(pixels: np.ndarray) -> np.ndarray:
    """MNIST-style nets saw light strokes on black. An image whose border is mostly light (paper, a
    screenshot) is inverted so that its strokes become light on dark; dark-background images pass."""
    border = pixels.reshape(len(pixels), -1)[:, _border_index(*pixels.shape[1:])]
    light = (border > 127).sum(axis=1) * 2 > border.shape[1]  # more than half the border is light
    if light.any():
        pixels = pixels.copy()
        pixels[light] = 255 - pixels[light]
    return pixels


@functools.lru_cache(maxsize=8)
def _border_index(channels: int, height: int, width: int) -> np.ndarray:
    """Flat indices of every channel's outermost pixel ring: one gather is the cheap way on small images."""
    frame = np.ones((height, width), dtype=bool)
    frame[1:-1, 1:-1] = False
    return np.flatnonzero(np.tile(frame.ravel(), channels))


def _as_single_images(images: Any) -> list[Any]:
    """Split the accepted input forms into single images (PIL, or uint8 H×W / H×W×C arrays)."""
    if isinstance(images, Image.Image):
        return [images]
    if isinstance(images, (list, tuple)):
        return [single for item in images for single in _as_single_images(_one_image(item))]
    array = _checked_array(images)
    if array.ndim == 2:
        return [array]
    return list(array)  # N×H×W or N×H×W×C


def _one_image(item: Any) -> Any:
    if isinstance(item, Image.Image):
        return item
    array = _checked_array(item)
    if array.ndim not in (2, 3):
        raise InputError(f"a list holds single images (H×W or H×W×C); got an item of shape {array.shape}")
    return array[None] if array.ndim == 3 else array


def _checked_array(images: Any) -> np.ndarray:
    try:
        array = np.asarray(images)
    except (ValueError, TypeError) as exc:
        raise InputError(f"cannot read the input as an array: {describe(exc)}") from exc
    if array.dtype == object:
        raise InputError("images must be uint8 or float arrays of one shape (got ragged or mixed data)")
    if array.ndim not in (2, 3, 4):
        raise InputError(f"images must be H×W, N×H×W or N×H×W×C arrays; got shape {array.shape}")
    if array.ndim == 4 and array.shape[-1] not in (1, 3, 4):
        raise InputError(f"N×H×W×C arrays need 1, 3 or 4 channels last; got shape {array.shape}")
    if array.size == 0:
        raise InputError(f"got an empty batch (shape {array.shape}): pass at least one image")
    if array.dtype == np.uint8:
        return array[..., 0] if array.ndim == 4 and array.shape[-1] == 1 else array
    if not np.issubdtype(array.dtype, np.floating):
        raise InputError(f"images must be uint8 (0–255) or float (0–1) arrays; got dtype {array.dtype}")
    if not np.isfinite(array).all():
        raise InputError("images contain NaN or infinite values")
    if array.min() < 0 or array.max() > 1:
        raise InputError(
            f"float images must lie in [0, 1] (got {array.min():.3g}…{array.max():.3g}); "
            "pass uint8 arrays for 0–255 pixels"
        )
    pixels = np.rint(array * 255).astype(np.uint8)
    return pixels[..., 0] if pixels.ndim == 4 and pixels.shape[-1] == 1 else pixels
