"""A user's image folder for training: listed and split by the data tier's folder rules (:mod:`edgecnn.data.folders`),
scanned once (scan.py), then held in memory when it fits a budget, else left on disk and read batch by batch
through a DataLoader (batches.py).

The budget is ``--max-memory-gb``, by default half of the RAM available at start; what a folder takes is its
uint8 tensor times the training processes on this machine (each holds its own copy). Either way the same
files, the same pixels, the same statistics and lineage: the same run.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from edgecnn.card import Normalization
from edgecnn.data.folders import guess_channels, split_folder
from edgecnn.errors import DataError
from edgecnn.training.scan import FolderImages, Scan, scan_folder

__all__ = ["Folder", "load_image_folder", "memory_budget"]

logger = logging.getLogger(__name__)


def memory_budget(max_memory_gb: float | None) -> int:
    """Bytes of decoded images this machine's training processes may hold: the setting, else half the RAM
    available now."""
    return int(max_memory_gb * 2**30) if max_memory_gb is not None else _available_bytes() // 2


def _available_bytes() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):  # not Linux: free pages
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def pixel_statistics(scan: Scan) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (unbiased) std of the scanned images' pixels in [0, 1], from exact integer sums."""
    count = len(scan.paths) * scan.images.shape[2] * scan.images.shape[3]
    if count < 2:
        raise DataError("an image folder's training split needs at least one readable image")
    means, stds = [], []
    for total, square in zip(scan.sums.sum(0).tolist(), scan.squares.sum(0).tolist(), strict=True):
        variance = (square * count - total * total) / (count * (count - 1))  # integers until this division
        means.append(round(total / count / 255, 4))
        stds.append(round(max(math.sqrt(variance) / 255, 1e-3), 4))  # a constant colour must not divide by 0
    return tuple(means), tuple(stds)


def folder_checksum(train: Scan, test: Scan) -> str:
    """SHA-256 over each image's pixel digest and label, training split then test split."""
    digest = hashlib.sha256()
    for scan in (train, test):
        for image in scan.digests:
            digest.update(image)
        digest.update(scan.labels.numpy().astype("<i8").tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Folder:
    """An image folder as training holds it (training.data wraps it in its DatasetBundle)."""

    name: str
    train_images: torch.Tensor | FolderImages
    train_labels: torch.Tensor
    test_images: torch.Tensor | FolderImages
    test_labels: torch.Tensor
    class_names: tuple[str, ...]
    normalization: Normalization
    lineage: str
    skipped: tuple[tuple[str, str], ...]


def load_image_folder(
    root: Path, *, image_size: int, test_fraction: float, seed: int, max_memory_gb: float | None, workers: int
) -> Folder:
    """``root`` split by the folder rules (train/ + test/ or val/, else a seeded, class-stratified ``test_fraction``
    of its files), both splits scanned at once into one array. Grey when every sampled image is grey, else RGB."""
    splits = split_folder(root, test_fraction=test_fraction, seed=seed)
    samples = splits.train + splits.test
    channels = guess_channels([path for path, _ in splits.train])
    stream, need, budget = _needs_streaming(len(samples), channels, image_size, max_memory_gb)
    if stream:
        logger.info(
            "%s: %d images would take %.2f GB in memory (budget %.2f GB): read from disk batch by batch",
            root, len(samples), need / 2**30, budget / 2**30,
        )  # fmt: skip
    scan = scan_folder(samples, channels, image_size, keep=not stream, workers=workers)
    train_files = {path for path, _ in splits.train}
    train, test = scan.split_at(sum(path in train_files for path in scan.paths))  # the scan keeps the order
    empty = sorted(set(range(len(splits.classes))) - set(train.labels.tolist()))
    if empty:
        names = ", ".join(splits.classes[i] for i in empty)
        raise DataError(f"{root}: no readable image in class folder(s) {names} of its training split", path=root)
    return Folder(
        name=str(root),
        train_images=train.images,
        train_labels=train.labels,
        test_images=test.images,
        test_labels=test.labels,
        class_names=splits.classes,
        normalization=Normalization(*pixel_statistics(train)),
        lineage=folder_checksum(train, test),
        skipped=scan.skipped,
    )


def _needs_streaming(count: int, channels: int, size: int, max_memory_gb: float | None) -> tuple[bool, int, int]:
    """(stream?, bytes the uint8 tensors would take on this machine, the budget): each of torchrun's processes
    here (LOCAL_WORLD_SIZE) holds its own copy."""
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    need, budget = count * channels * size * size * local, memory_budget(max_memory_gb)
    return need > budget, need, budget
