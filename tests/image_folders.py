"""Image folders written from real Fashion-MNIST test images, for the tests of every reader of a user's folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from edgecnn.data.builtin import FASHION_CLASSES

CLASS_FOLDERS = tuple(name.replace("/", "-") for name in FASHION_CLASSES)  # "T-shirt/top" cannot name a folder


def write_folder(root: Path, fashion, *, per_class: int, start: int = 0, names=CLASS_FOLDERS) -> list[Path]:
    """``per_class`` PNG files per class (test images ``start`` … of each class), in ``root/<name>/``."""
    written = []
    for label, name in enumerate(names):
        (root / name).mkdir(parents=True, exist_ok=True)
        members = (fashion.test_labels == label).nonzero().flatten()[start : start + per_class].tolist()
        for i in members:
            path = root / name / f"{i:05d}.png"
            Image.fromarray(fashion.test_images[i, 0].numpy()).save(path)
            written.append(path)
    return written


def break_files(root: Path, names=CLASS_FOLDERS) -> list[Path]:
    """Three files no decoder reads, in three class folders: a PNG cut in half, text named .png, an empty .jpg."""
    whole = next((root / names[3]).glob("*.png")).read_bytes()
    broken = [root / names[3] / "cut.png", root / names[5] / "notes.png", root / names[7] / "empty.jpg"]
    broken[0].write_bytes(whole[: len(whole) // 2])
    broken[1].write_text("not an image")
    broken[2].write_bytes(b"")
    return broken


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))
