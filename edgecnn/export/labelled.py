"""Real labelled images without torch: MNIST / Fashion-MNIST from their IDX files, or an image folder.

``edgecnn quantize`` runs where only onnx and onnxruntime are installed, so it cannot use the training
side's torchvision loaders. The IDX format is four big-endian header fields and raw bytes; image folders
hold one sub-folder per class (``train/`` and ``test/`` splits, or one folder split here, seeded).
"""

from __future__ import annotations

import gzip
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.config import resolve_data_root
from edgecnn.errors import DataError, DataWarning, ImageError, describe
from edgecnn.runtime.images import IMAGE_FORMATS, IMAGE_SUFFIXES, load_image
from edgecnn.runtime.preprocess import to_model_pixels

__all__ = ["Labelled", "load_labelled", "folder_image", "warn_unreadable", "BUILTIN_CLASSES"]

FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
BUILTIN_CLASSES = {"mnist": tuple(str(d) for d in range(10)), "fashion-mnist": FASHION_CLASSES}
_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}  # torchvision's layout under the data root
_FOLDER_SUFFIXES = (*IMAGE_SUFFIXES, ".ppm", ".pgm")  # what training's folder listing (torchvision's) takes too
_NAMED = 5  # unreadable files named in the warning


def folder_image(path: str | os.PathLike[str], shape: tuple[int, int, int]) -> np.ndarray:
    """One file of a user's image folder → uint8 C×H×W, as training and calibration read it: the runtime's own
    reading (upright by EXIF, alpha onto white, 16-bit scaled, the size guards) and "stretch" framing, so the
    deployed model is fed what it was trained on — in any format Pillow decodes (folders hold PGM and PPM too,
    which the runtime refuses to be handed). Raises ImageError."""
    image = load_image(path, formats=None)
    if image.format not in IMAGE_FORMATS:  # checked above: handed on as pixels, not as a file of that format
        image = image.copy()
    return to_model_pixels([image], shape, fit="stretch")[0]


def warn_unreadable(skipped: list[tuple[str, str]], total: int, *, where: str = "") -> None:
    """One warning line for a folder's unreadable files, (path, why) each, naming the first few."""
    if skipped:
        named = "; ".join(f"{path} ({why})" for path, why in skipped[:_NAMED])
        more = f" and {len(skipped) - _NAMED} more{where}" if len(skipped) > _NAMED else ""
        message = f"skipped {len(skipped)} of {total} image(s) that cannot be read: {named}{more}"
        warnings.warn(message, DataWarning, stacklevel=3)


@dataclass(frozen=True)
class Labelled:
    name: str
    class_names: tuple[str, ...]
    train_images: np.ndarray  # uint8 N×C×H×W at the model's size
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def load_labelled(
    source: str, *, shape: tuple[int, int, int], data_root: str | os.PathLike[str] | None = None, seed: int = 0
) -> Labelled:
    """``mnist``, ``fashion-mnist`` or a folder of class sub-folders, as uint8 N×C×H×W of ``shape``."""
    if source in _FOLDERS:
        if tuple(shape) != (1, 28, 28):
            raise DataError(f"{source} is 1×28×28; the model takes {'×'.join(map(str, shape))}")
        raw = resolve_data_root(data_root) / _FOLDERS[source] / "raw"
        splits = [
            _read_idx(raw, f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte") for prefix in ("train", "t10k")
        ]
        (train_x, train_y), (test_x, test_y) = splits
        return Labelled(source, BUILTIN_CLASSES[source], train_x[:, None], train_y, test_x[:, None], test_y)
    path = Path(source).expanduser()
    if not path.is_dir():
        raise DataError(
            f"calibration data {source!r} is neither mnist nor fashion-mnist nor a folder of class sub-folders",
            path=path,
        )
    return _load_folder(path, shape, seed)


def _read_idx(raw: Path, images_name: str, labels_name: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = _idx_array(raw, images_name), _idx_array(raw, labels_name)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"{raw}: {images_name} and {labels_name} do not match ({images.shape}, {labels.shape})", path=raw
        )
    return images, labels.astype(np.int64)


def _idx_array(raw: Path, name: str) -> np.ndarray:
    path = next((p for p in (raw / name, raw / f"{name}.gz") if p.is_file()), None)
    if path is None:
        raise DataError(
            f"{raw / name} not found; put the dataset's IDX files in {raw}, or point --data-root / "
            "EDGECNN_DATA at the folder holding it (edgecnn train downloads them where it can)",
            path=raw,
        )
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        dims = data[3]
        if data[:3] != b"\x00\x00\x08" or len(data) < 4 + 4 * dims:
            raise ValueError("not an unsigned-byte IDX file")
        shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
        return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)
    except (OSError, ValueError, IndexError, EOFError) as exc:
        raise DataError(f"{path} is not a readable IDX file ({describe(exc)})", path=path) from exc


def _load_folder(root: Path, shape: tuple[int, int, int], seed: int) -> Labelled:
    if (root / "train").is_dir() and (root / "test").is_dir():
        classes, train = _folder_images(root / "train", shape)
        test_classes, test = _folder_images(root / "test", shape, classes)
        return Labelled(str(root), classes, *train, *test)
    classes, (images, labels) = _folder_images(root, shape)
    order = np.random.default_rng(seed).permutation(len(labels))
    train, test = order[::2], order[1::2]  # half to calibrate, half to prove parity on
    return Labelled(str(root), classes, images[train], labels[train], images[test], labels[test])


def _folder_images(
    root: Path, shape: tuple[int, int, int], classes: tuple[str, ...] | None = None
) -> tuple[tuple[str, ...], tuple[np.ndarray, np.ndarray]]:
    found = tuple(sorted(p.name for p in root.iterdir() if p.is_dir()))
    if len(found) < 2 or (classes is not None and found != classes):
        raise DataError(
            f"{root}: need one sub-folder per class (at least 2, the same in train/ and test/); found {list(found)}",
            path=root,
        )
    files = [
        (f, label)
        for label, name in enumerate(found)
        for f in sorted((root / name).rglob("*"))
        if f.suffix.lower() in _FOLDER_SUFFIXES
    ]
    if not files:
        raise DataError(f"{root}: no images in its class folders", path=root)
    images, labels, skipped = [], [], []
    for path, label in files:  # one decoded photo at a time; an unreadable file is skipped, as training skips it
        try:
            images.append(folder_image(path, shape))
        except ImageError as exc:
            skipped.append((str(path), describe(exc).removeprefix(f"{path}: ")))
            continue
        labels.append(label)
    warn_unreadable(skipped, len(files))
    if not images:
        raise DataError(f"{root}: none of its {len(files)} image(s) can be read", path=root)
    return found, (np.stack(images), np.array(labels, dtype=np.int64))
