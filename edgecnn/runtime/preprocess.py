"""numpy + Pillow preprocessing: pixels → the model's input tensor. One definition for runtime and parity.

The arithmetic is torchvision's ``ToTensor`` + ``Normalize`` in float32 (divide by 255, subtract the
mean, divide by the std), so a float graph fed from here sees bit-identical input to the training loop.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from edgecnn.runtime.framing import border_pixels, fit_image
from edgecnn.runtime.images import MAX_BATCH, MAX_BATCH_BYTES, image_batch, load_image
from edgecnn.runtime.metadata import InputSpec

__all__ = ["normalize", "to_graph_input", "load_image", "to_model_pixels", "invert_light_backgrounds", "MAX_BATCH"]


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
        floats = normalize(images, mean, std)
        return np.ascontiguousarray(floats.transpose(0, 2, 3, 1)) if spec.channels_last else floats
    if spec.layout == "NHW":
        return np.ascontiguousarray(images[:, 0])
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1))


# ---- images and arrays from users → uint8 N×C×H×W at the model's size -------------------------------


def to_model_pixels(
    images: Any,
    shape: tuple[int, int, int],
    *,
    fit: str = "stretch",
    invert: bool = False,
    dark_background: bool = False,
    channel_order: str = "rgb",
) -> np.ndarray:
    """Images (see :mod:`edgecnn.runtime.images` for the accepted forms and the size limits) → uint8 N×C×H×W:
    converted to the model's channels, light backgrounds inverted when ``invert`` (MNIST-style models), then
    framed (``dark_background``: the model saw objects on black; see :func:`~edgecnn.runtime.framing.fit_image`).
    Files and PIL images are decoded one at a time, so a call holds one full-size photo at once."""
    channels, height, width = shape
    if fit == "stretch" and isinstance(images, np.ndarray) and images.dtype == np.uint8:
        fast = _camera_batch(images, shape)  # already the model's size: no PIL round trip
        if fast is not None:
            return invert_light_backgrounds(fast) if invert else fast
    count, singles = image_batch(images, channels=channels, channel_order=channel_order)
    out = np.empty((count, channels, height, width), dtype=np.uint8)
    for i, single in enumerate(singles):
        pixels = _to_channels(single, channels)
        if invert and _light_border(pixels):
            pixels = 255 - pixels
        out[i] = fit_image(pixels, (height, width), fit, dark_background=dark_background).transpose(2, 0, 1)
    return out


def _camera_batch(images: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray | None:
    """uint8 H×W, N×H×W or N×H×W×C at the model's exact size → N×C×H×W without a copy per image. Within
    the input limits or None (the general path then refuses it with the reason)."""
    channels, height, width = shape
    batch = images[None] if images.ndim == 2 or (images.ndim == 3 and channels > 1) else images
    if batch.ndim not in (3, 4) or not 0 < len(batch) <= MAX_BATCH or batch.nbytes > MAX_BATCH_BYTES:
        return None
    if channels == 1 and batch.shape[1:] == (height, width):
        return np.ascontiguousarray(batch[:, None])
    if channels > 1 and batch.shape[1:] == (height, width, channels):
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
    return None


def _to_channels(single: np.ndarray, channels: int) -> np.ndarray:
    """uint8 H×W or H×W×3 → H×W×C with the model's channels (grey through Pillow's own luma formula,
    so an array and the same picture as a PIL image give the same pixels)."""
    is_grey = single.ndim == 2
    if (channels == 1) == is_grey:
        return single[..., None] if is_grey else single
    mode = "L" if channels == 1 else "RGB"
    converted = np.asarray(Image.fromarray(single).convert(mode), dtype=np.uint8)
    return converted[..., None] if channels == 1 else converted


def invert_light_backgrounds(pixels: np.ndarray) -> np.ndarray:
    """MNIST-style nets saw light strokes on black. An image whose border is mostly light (paper, a
    screenshot) is inverted so that its strokes become light on dark; dark-background images pass."""
    border = pixels.reshape(len(pixels), -1)[:, _border_index(*pixels.shape[1:])]
    light = (border > 127).sum(axis=1) * 2 > border.shape[1]  # more than half the border is light
    if light.any():
        pixels = pixels.copy()
        pixels[light] = 255 - pixels[light]
    return pixels


def _light_border(pixels: np.ndarray) -> bool:
    """The same test for one H×W×C image of any size."""
    border = border_pixels(pixels)
    return bool((border > 127).sum() * 2 > border.size)


@functools.lru_cache(maxsize=8)
def _border_index(channels: int, height: int, width: int) -> np.ndarray:
    """Flat indices of every channel's outermost pixel ring: one gather is the cheap way on small images."""
    frame = np.ones((height, width), dtype=bool)
    frame[1:-1, 1:-1] = False
    return np.flatnonzero(np.tile(frame.ravel(), channels))
