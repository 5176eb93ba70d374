"""Photo-like framings of real test images, to measure how each ``fit`` mode copes with what a camera
or a scanner delivers instead of a centred 28×28 crop. Deterministic for a given seed.

Each framing takes uint8 H×W images whose background is dark (MNIST, Fashion-MNIST) and returns RGB
photos: upscaled (bilinear, as an optical image is smoother than its pixels), placed in a larger frame,
on dark or on light "paper", with a brightness gradient, sensor noise and JPEG compression where named.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image

__all__ = ["FRAMINGS", "frame_all"]

Framing = Callable[[np.ndarray, np.random.Generator], Image.Image]


def _place(
    image: np.ndarray, canvas: tuple[int, int], scale: float, rng: np.random.Generator, *, light: bool, jitter: float
) -> np.ndarray:
    """The image scaled to ``scale`` × the canvas height, at a random offset (``jitter`` of the free
    space around the centre), on a canvas of the image's own background (inverted when ``light``)."""
    width, height = canvas
    side = max(8, round(height * scale))
    big = np.asarray(Image.fromarray(image).resize((side, side), Image.BILINEAR), dtype=np.float32)
    frame = np.zeros((height, width), dtype=np.float32)
    free_y, free_x = height - side, width - side
    top = int(np.clip(free_y / 2 + rng.uniform(-jitter, jitter) * free_y / 2, 0, free_y))
    left = int(np.clip(free_x / 2 + rng.uniform(-jitter, jitter) * free_x / 2, 0, free_x))
    frame[top : top + side, left : left + side] = big
    return 255 - frame if light else frame


def _photo(
    frame: np.ndarray, rng: np.random.Generator, *, noise: float = 0.0, gradient: float = 0.0, jpeg: int | None = None
) -> Image.Image:
    height, width = frame.shape
    ramp = np.linspace(-gradient, gradient, width)[None, :] * rng.choice([-1, 1])  # uneven lighting
    pixels = frame * (1 - gradient) + ramp * 255 / 2 + rng.normal(0, noise, frame.shape) if noise or gradient else frame
    rgb = np.repeat(np.clip(np.rint(pixels), 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    image = Image.fromarray(rgb)
    if jpeg is None:
        return image
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=jpeg)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


FRAMINGS: dict[str, Framing] = {
    "original 28×28": lambda im, rng: Image.fromarray(im),
    "4:3 frame": lambda im, rng: _photo(_place(im, (160, 120), 0.9, rng, light=False, jitter=0.8), rng),
    "light background": lambda im, rng: _photo(_place(im, (112, 112), 1.0, rng, light=True, jitter=0), rng),
    "white margin": lambda im, rng: _photo(_place(im, (200, 200), 0.5, rng, light=True, jitter=0.3), rng),
    "small, off-centre": lambda im, rng: _photo(_place(im, (224, 224), 0.3, rng, light=True, jitter=0.9), rng),
    "phone JPEG": lambda im, rng: _photo(
        _place(im, (320, 240), 0.45, rng, light=True, jitter=0.6), rng, noise=4.0, gradient=0.15, jpeg=70
    ),
}


def frame_all(images: np.ndarray, framing: str, *, seed: int = 0) -> list[Image.Image]:
    """``images`` (uint8 N×H×W) as photos in the named framing."""
    rng = np.random.default_rng(seed)
    return [FRAMINGS[framing](image, rng) for image in images]
