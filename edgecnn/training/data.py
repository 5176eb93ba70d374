"""Datasets as training holds them: MNIST, Fashion-MNIST and a user's image folder as uint8 tensors (a folder
over the memory budget stays on disk: folders.py), read through the data tier (:mod:`edgecnn.data`) that export
and quantize read too.

MNIST-sized sets fit in memory many times over, so instead of decoding one PIL image per item through a
DataLoader (the tutorials' loop) we read them once and slice batches from a tensor. Images stay uint8
(N×C×H×W); :meth:`DatasetBundle.normalize` turns a batch into the model's float input with exactly
``ToTensor`` + ``Normalize`` arithmetic.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from edgecnn.card import Normalization
from edgecnn.config import TrainConfig
from edgecnn.data.builtin import (
    BUILTIN_CLASSES,
    BUILTIN_DATASETS,
    BUILTIN_NORMALIZATION,
    builtin_folder,
    has_builtin,
    read_builtin,
    resolve_data_root,
)
from edgecnn.data.folders import checked_folder
from edgecnn.errors import DataError, describe

if TYPE_CHECKING:
    from edgecnn.training.scan import FolderImages

__all__ = [
    "DatasetBundle",
    "load_dataset",
    "split_for_training",
    "load_dataset_for",
    "split_validation",
    "default_workers",
]


@dataclass(frozen=True)
class DatasetBundle:
    name: str
    train_images: torch.Tensor | FolderImages  # uint8, N×C×H×W (an image folder over the budget: on disk)
    train_labels: torch.Tensor  # int64, N
    test_images: torch.Tensor | FolderImages
    test_labels: torch.Tensor
    class_names: tuple[str, ...]
    normalization: Normalization
    lineage: str | None = None  # an image folder's checksum, from its scan (folders.py)
    skipped: tuple[tuple[str, str], ...] = ()  # an image folder's unreadable files and why, left out

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_images.shape[1:]
        return int(c), int(h), int(w)

    def checksum(self) -> str:
        """SHA-256 of both splits' pixels and labels: the card's data lineage."""
        if self.lineage is not None:
            return self.lineage
        digest = hashlib.sha256()
        for tensor in (self.train_images, self.train_labels, self.test_images, self.test_labels):
            digest.update(tensor.contiguous().numpy().tobytes())
        return digest.hexdigest()

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N×C×H×W → float32 model input (the same arithmetic as ToTensor + Normalize)."""
        mean = torch.tensor(self.normalization.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.normalization.std).view(1, -1, 1, 1)
        return (images.float().div(255) - mean) / std


def load_dataset(
    dataset: str,
    *,
    data_root: str | os.PathLike[str] | None = None,
    image_size: int = 28,
    test_fraction: float = 0.2,
    seed: int = 0,
    max_memory_gb: float | None = None,
    workers: int | None = None,
) -> DatasetBundle:
    """Load ``mnist``, ``fashion-mnist`` or an image folder (one sub-folder per class; held in memory up to
    ``max_memory_gb`` — None: half the available RAM — else read from disk batch by batch, decoded in
    ``workers`` processes — None: as many as this process's share of the cores, up to 4)."""
    if dataset in BUILTIN_DATASETS:
        return _load_builtin(dataset, resolve_data_root(data_root))
    path = checked_folder(dataset, builtin=BUILTIN_DATASETS)
    from edgecnn.training.folders import load_image_folder

    folder = load_image_folder(
        path,
        image_size=image_size,
        test_fraction=test_fraction,
        seed=seed,
        max_memory_gb=max_memory_gb,
        workers=default_workers() if workers is None else workers,
    )
    return DatasetBundle(**{f.name: getattr(folder, f.name) for f in dataclasses.fields(folder)})  # no copies


def default_workers() -> int:
    """DataLoader workers: this process's share of the cores (torchrun's LOCAL_WORLD_SIZE), 1 to 4."""
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, min(4, (os.cpu_count() or 1) // local))


def load_dataset_for(config: TrainConfig, data_root: str | os.PathLike[str] | None = None) -> DatasetBundle:
    """The dataset a training config names, split as it says (``data_root`` overrides the config's)."""
    return load_dataset(
        config.dataset,
        data_root=data_root or config.data_root,
        image_size=config.image_size,
        test_fraction=config.test_fraction,
        seed=config.seed,
        max_memory_gb=config.max_memory_gb,
        workers=config.workers,
    )


def _load_builtin(name: str, root: Path) -> DatasetBundle:
    if not has_builtin(name, root):
        _download(name, root)
    train, test = (read_builtin(name, split, root) for split in ("train", "test"))
    return DatasetBundle(
        name=name,
        train_images=torch.from_numpy(train.images),
        train_labels=torch.from_numpy(train.labels),
        test_images=torch.from_numpy(test.images),
        test_labels=torch.from_numpy(test.labels),
        class_names=BUILTIN_CLASSES[name],
        normalization=BUILTIN_NORMALIZATION[name],
    )


def _download(name: str, root: Path) -> None:
    """Fetch a built-in dataset's IDX files through torchvision (whose progress goes to stderr: stdout is kept
    for our results); where that fails, say where the files belong."""
    from torchvision import datasets

    cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
    try:
        with contextlib.redirect_stdout(sys.stderr):
            for train in (True, False):
                cls(str(root), train=train, download=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raw = builtin_folder(name, root)
        raise DataError(
            f"{name} not found in {raw} and could not be downloaded ({describe(exc)}); put the IDX files "
            f"there, or point --data-root / EDGECNN_DATA at a folder holding {raw.parent.name}/raw",
            path=raw,
        ) from exc


def split_validation(labels: torch.Tensor, size: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Training and validation indices of a training set: exactly ``size`` images (None: 1/12, at most
    5,000; 0: none) held out, each class in proportion (largest remainders, at least one per class),
    seeded apart from the test split's draw."""
    if size is None:
        size = min(5000, round(len(labels) / 12))
    if size == 0:
        return torch.arange(len(labels)), torch.arange(0)
    classes, counts = labels.unique(return_counts=True)
    if size >= len(labels) or size < len(classes) or int(counts.min()) < 2:
        raise DataError(
            f"cannot hold {size} validation image(s) out of {len(labels)} training images in {len(classes)} "
            f"classes (each class needs 2 or more images, and one of them for validation); set --val-size"
        )
    share = counts.double() * size / len(labels)
    quota = share.floor().long().clamp(1, None)
    for i in (share - share.floor()).argsort(descending=True)[: max(0, size - int(quota.sum()))]:
        quota[i] += 1
    quota = torch.minimum(quota, counts - 1)  # every class keeps training images
    generator = torch.Generator().manual_seed(seed + _VALIDATION_SALT)
    val = []
    for cls, n in zip(classes, quota, strict=True):
        members = (labels == cls).nonzero().flatten()
        val.append(members[torch.randperm(len(members), generator=generator)[: int(n)]])
    val_idx = torch.cat(val).sort().values
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[val_idx] = False
    return keep.nonzero().flatten(), val_idx


_VALIDATION_SALT = 0x5EED  # the validation draw must not be the image folder's test draw with the same seed


def split_for_training(
    data: DatasetBundle, config: TrainConfig, device: torch.device
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """(training images, labels) and (validation images, labels) on ``device``: the validation split
    first, from the whole training set, then ``limit_train``'s subset of what is left."""
    train_idx, val_idx = split_validation(data.train_labels, config.val_size, config.seed)
    if config.limit_train is not None and config.limit_train < len(train_idx):
        keep = torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(config.seed))
        train_idx = train_idx[keep[: config.limit_train]].sort().values
    images, labels = data.train_images, data.train_labels
    return (
        (images[train_idx].to(device), labels[train_idx].to(device)),
        (images[val_idx].to(device), labels[val_idx].to(device)),
    )
