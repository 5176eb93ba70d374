"""The built-in datasets, MNIST and Fashion-MNIST: their names, class names and normalization, and their IDX
files read as uint8 arrays (torchvision's layout under the data root: ``MNIST/raw/``, ``FashionMNIST/raw/``).

The IDX format is four big-endian header fields and raw bytes; the files may be gzipped. Nothing here
downloads: ``edgecnn train`` fetches missing files through torchvision where the network allows, then reads
them here like everyone else.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.card import Normalization
from edgecnn.errors import DataError, describe

__all__ = [
    "resolve_data_root",
    "BUILTIN_DATASETS",
    "BUILTIN_CLASSES",
    "BUILTIN_NORMALIZATION",
    "BUILTIN_SHAPE",
    "FASHION_CLASSES",
    "Arrays",
    "builtin_folder",
    "has_builtin",
    "read_builtin",
    "read_idx",
]

BUILTIN_DATASETS = ("mnist", "fashion-mnist")
BUILTIN_SHAPE = (1, 28, 28)
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
# The tutorials' constants: the training sets' pixel mean and std.
BUILTIN_NORMALIZATION = {
    "mnist": Normalization((0.1307,), (0.3081,)),
    "fashion-mnist": Normalization((0.2860,), (0.3530,)),
}
_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}  # torchvision's class names, its folder names
_SPLITS = {"train": "train", "test": "t10k"}
_KINDS = (("images", 3), ("labels", 1))  # each split's two files and their dimensions


def resolve_data_root(data_root: str | os.PathLike[str] | None = None) -> Path:
    """--data-root, else $EDGECNN_DATA, else the user cache dir (where downloads go)."""
    if data_root:
        return Path(data_root).expanduser()
    env = os.environ.get("EDGECNN_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "edgecnn" / "datasets"


@dataclass(frozen=True)
class Arrays:
    """One split of a built-in dataset: uint8 N×1×28×28 images and int64 labels."""

    images: np.ndarray
    labels: np.ndarray


def builtin_folder(name: str, data_root: str | os.PathLike[str] | None = None) -> Path:
    """Where ``name``'s IDX files live: ``ROOT/MNIST/raw`` or ``ROOT/FashionMNIST/raw``."""
    return resolve_data_root(data_root) / _FOLDERS[name] / "raw"


def has_builtin(name: str, data_root: str | os.PathLike[str] | None = None) -> bool:
    """Whether every IDX file of ``name`` is there (plain or gzipped)."""
    raw = builtin_folder(name, data_root)
    names = [f"{prefix}-{kind}-idx{dims}-ubyte" for prefix in _SPLITS.values() for kind, dims in _KINDS]
    return all((raw / n).is_file() or (raw / f"{n}.gz").is_file() for n in names)


def read_builtin(name: str, split: str, data_root: str | os.PathLike[str] | None = None) -> Arrays:
    """The ``train`` or ``test`` split of ``mnist`` or ``fashion-mnist``; missing files are a DataError saying
    where they were looked for and how to point there."""
    raw = builtin_folder(name, data_root)
    prefix = _SPLITS[split]
    images, labels = (read_idx(raw, f"{prefix}-{kind}-idx{dims}-ubyte") for kind, dims in _KINDS)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{raw}: the {split} images and labels do not match ({images.shape}, {labels.shape})", path=raw)
    return Arrays(images[:, None], labels.astype(np.int64))


def read_idx(raw: Path, name: str) -> np.ndarray:
    """``raw/name`` (or ``name.gz``) as the uint8 array its IDX header describes."""
    path = next((p for p in (raw / name, raw / f"{name}.gz") if p.is_file()), None)
    if path is None:
        raise DataError(
            f"{raw / name} not found; put the dataset's IDX files in {raw}, or point --data-root / "
            "EDGECNN_DATA at the folder holding it (edgecnn train downloads them where it can)",
            path=raw,
        )
    try:
        data = bytearray(gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes())
        dims = data[3]
        if bytes(data[:3]) != b"\x00\x00\x08" or len(data) < 4 + 4 * dims:
            raise ValueError("not an unsigned-byte IDX file")
        shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
        return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)  # writable: a bytearray
    except (OSError, ValueError, IndexError, EOFError) as exc:
        raise DataError(f"{path} is not a readable IDX file ({describe(exc)})", path=path) from exc
