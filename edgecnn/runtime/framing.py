"""Framing: a photo of any size and aspect → the model's H×W, the way its training images were made.

- ``stretch``: resize to H×W, aspect ignored (how image-folder datasets are trained: the default there).
- ``pad``: keep the aspect, letterbox with the background colour (the border's median).
- ``crop``: keep the aspect, cut the centre to the model's aspect.
- ``object``: find the object (pixels that differ from the background), crop to it, pad to a square and
  fill the frame: Fashion-MNIST's recipe (trim, longest edge to 28, centre).
- ``digit``: MNIST's recipe: the ink's bounding box scaled into 20×20 (of 28×28) keeping the aspect, then
  centred by centre of mass; so a small, off-centre digit on a page reads like an MNIST digit.

Input arrays are uint8 H×W×C (C = 1 or 3) whose background is already dark for dark-background
models (the runtime inverts light backgrounds first).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from edgecnn.config import FIT_MODES
from edgecnn.errors import InputError

__all__ = ["FIT_MODES", "fit_image", "default_fit", "border_pixels"]

_DEFAULT_FIT = {"mnist": "digit", "fashion-mnist": "object"}  # the recipe each dataset's images were made with
_OBJECT_LEVEL = 0.15  # share of the strongest difference from the background that counts as object/ink
_DIGIT_BOX = 20 / 28  # MNIST: the digit's longer side fills 20 of 28 pixels
_WORKING_SIDE = 16  # photos are first shrunk to at most 16× the model's side: the framing needs no more
#   detail than that, and a 40-megapixel photo would otherwise cost seconds and a full-size float copy


def default_fit(dataset: str) -> str:
    """The framing a model trained on ``dataset`` expects (stretch: how image folders are resized)."""
    return _DEFAULT_FIT.get(dataset, "stretch")


def fit_image(pixels: np.ndarray, size: tuple[int, int], fit: str, *, dark_background: bool = False) -> np.ndarray:
    """uint8 H×W×C → uint8 h×w×C framed by ``fit`` (one of :data:`FIT_MODES`). ``dark_background``: the
    model saw objects on black, so ``object`` also levels the photo's background (lighting gradient
    included) down to black, as ``digit`` always does."""
    if fit not in FIT_MODES:
        raise InputError(f"fit must be one of {', '.join(FIT_MODES)} (got {fit!r})")
    height, width = size
    if fit == "stretch":
        return _resize(pixels, width, height, Image.BILINEAR)
    pixels = _shrunk(pixels, _WORKING_SIDE * max(height, width))
    if fit == "digit":
        if pixels.shape[-1] != 1:
            raise InputError("fit='digit' is for grey MNIST-style models; use 'object', 'pad' or 'crop'")
        return _digit(pixels[..., 0], height, width)[..., None]
    background = np.median(border_pixels(pixels), axis=0)
    if fit == "object":
        if dark_background:
            pixels, background = _levelled(pixels), np.zeros(pixels.shape[-1])
        pixels = _object_square(pixels, background)
        return _resize(pixels, width, height, Image.LANCZOS)
    if fit == "pad":
        return _pad_to(pixels, height, width, background)
    return _crop_to(pixels, height, width)


def _shrunk(pixels: np.ndarray, longest: int) -> np.ndarray:
    """The image with its longer side at most ``longest``, aspect kept (box filter: fast, no aliasing)."""
    rows, cols = pixels.shape[:2]
    if max(rows, cols) <= longest:
        return pixels
    scale = longest / max(rows, cols)
    return _resize(pixels, max(1, round(cols * scale)), max(1, round(rows * scale)), Image.BOX)


def _resize(pixels: np.ndarray, width: int, height: int, method: int) -> np.ndarray:
    if pixels.shape[:2] == (height, width):
        return pixels
    channels = pixels.shape[-1]
    image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
    return np.asarray(image.resize((width, height), method), dtype=np.uint8).reshape(height, width, channels)


def border_pixels(pixels: np.ndarray) -> np.ndarray:
    """Every pixel of the outermost ring, as rows of channel values."""
    return np.concatenate([pixels[0], pixels[-1], pixels[1:-1, 0], pixels[1:-1, -1]]).reshape(-1, pixels.shape[-1])


def _pad_to(pixels: np.ndarray, height: int, width: int, background: np.ndarray) -> np.ndarray:
    rows, cols = pixels.shape[:2]
    scale = min(width / cols, height / rows)
    inner = _resize(pixels, max(1, round(cols * scale)), max(1, round(rows * scale)), Image.BILINEAR)
    canvas = np.empty((height, width, pixels.shape[-1]), dtype=np.uint8)
    canvas[:] = np.rint(background).astype(np.uint8)
    top, left = (height - inner.shape[0]) // 2, (width - inner.shape[1]) // 2
    canvas[top : top + inner.shape[0], left : left + inner.shape[1]] = inner
    return canvas


def _crop_to(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    rows, cols = pixels.shape[:2]
    keep_rows, keep_cols = (
        (rows, round(rows * width / height)) if cols * height > rows * width else (round(cols * height / width), cols)
    )
    top, left = (rows - keep_rows) // 2, (cols - keep_cols) // 2
    return _resize(pixels[top : top + keep_rows, left : left + keep_cols], width, height, Image.BILINEAR)


def _box(strength: np.ndarray) -> tuple[slice, slice] | None:
    """Rows and columns holding pixels at least _OBJECT_LEVEL of the strongest; None if all is flat."""
    peak = float(strength.max())
    if peak < 8:  # nothing stands out from the background by more than sensor noise
        return None
    rows, cols = np.nonzero(strength >= _OBJECT_LEVEL * peak)
    return slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)


def _object_square(pixels: np.ndarray, background: np.ndarray) -> np.ndarray:
    """The object's bounding box, padded with the background to a square around its centre."""
    box = _box(np.abs(pixels.astype(np.float32) - background).max(axis=-1))
    if box is None:
        return pixels
    crop = pixels[box]
    side = max(crop.shape[:2])
    square = np.empty((side, side, pixels.shape[-1]), dtype=np.uint8)
    square[:] = np.rint(background).astype(np.uint8)
    top, left = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    square[top : top + crop.shape[0], left : left + crop.shape[1]] = crop
    return square


def _background_plane(channel: np.ndarray) -> np.ndarray:
    """A plane a + b·x + c·y fitted to the border: the paper's level under uneven light."""
    height, width = channel.shape
    inner = np.arange(1, height - 1)
    rows = np.concatenate([np.zeros(width), np.full(width, height - 1), inner, inner])
    cols = np.concatenate([np.arange(width), np.arange(width), np.zeros(len(inner)), np.full(len(inner), width - 1)])
    values = border_pixels(channel[..., None])[:, 0].astype(np.float64)  # in the same order as rows, cols
    design = np.column_stack([np.ones(len(rows)), cols, rows])
    a, b, c = np.linalg.lstsq(design, values, rcond=None)[0]
    return (a + b * np.arange(width)[None, :] + c * np.arange(height)[:, None]).astype(np.float32)


def _levelled(pixels: np.ndarray) -> np.ndarray:
    """Background (a fitted plane per channel) down to 0 and the remaining range stretched back to 0–255."""
    out = np.empty(pixels.shape, dtype=np.uint8)
    for c in range(pixels.shape[-1]):
        plane = _background_plane(pixels[..., c])
        span = max(255.0 - float(np.median(plane)), 32.0)
        out[..., c] = np.rint(np.clip((pixels[..., c] - plane) * (255.0 / span), 0, 255))
    return out


def _digit(grey: np.ndarray, height: int, width: int) -> np.ndarray:
    """MNIST's normalisation of one grey image whose ink is lighter than its background."""
    ink = np.clip(grey.astype(np.float32) - _background_plane(grey), 0, None)
    box = _box(ink)
    if box is None:
        return _resize(grey[..., None], width, height, Image.BILINEAR)[..., 0]
    crop = ink[box]
    peak = float(np.percentile(crop[crop >= _OBJECT_LEVEL * crop.max()], 95))
    crop = np.clip(crop / max(peak, 1.0), 0, 1) * 255  # strokes as bright as MNIST's, whatever the pen
    scale = _DIGIT_BOX * min(height, width) / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    small = np.asarray(Image.fromarray(crop.astype(np.uint8)).resize(size, Image.LANCZOS), dtype=np.float32)
    return _centre_of_mass_paste(small, height, width)


def _centre_of_mass_paste(small: np.ndarray, height: int, width: int) -> np.ndarray:
    total = small.sum()
    rows, cols = np.indices(small.shape)
    centre = ((rows * small).sum() / total, (cols * small).sum() / total) if total else np.divide(small.shape, 2)
    top, left = round(height / 2 - centre[0]), round(width / 2 - centre[1])
    canvas = np.zeros((height, width), dtype=np.float32)
    dst_r = slice(max(0, top), min(height, top + small.shape[0]))
    dst_c = slice(max(0, left), min(width, left + small.shape[1]))
    canvas[dst_r, dst_c] = small[dst_r.start - top : dst_r.stop - top, dst_c.start - left : dst_c.stop - left]
    return np.rint(np.clip(canvas, 0, 255)).astype(np.uint8)
