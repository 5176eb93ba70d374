"""A user's image folder: listed, scanned once (scan.py), then held in memory when it fits a budget, else left
on disk and read batch by batch through a DataLoader (batches.py).

The budget is ``--max-memory-gb``, by default half of the RAM available at start; what a folder takes is its
uint8 tensor times the training processes on this machine (each holds its own copy). Either way the same
files, the same pixels, the same statistics and lineage: the same run.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from pathlib import Path

import torch

from edgecnn.card import Normalization
from edgecnn.errors import DataError, describe
from edgecnn.training.data import DatasetBundle
from edgecnn.training.scan import Scan, guess_channels, scan_folder

__all__ = ["load_image_folder", "memory_budget", "stratified_holdout"]

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


def load_image_folder(
    root: Path, *, image_size: int, test_fraction: float, seed: int, max_memory_gb: float | None, workers: int
) -> DatasetBundle:
    """``root/train/<class>/*`` + ``root/test/<class>/*`` (or ``val/``), else ``root/<class>/*`` split into a
    seeded, class-stratified test share of its readable images. Grey when every sampled image is grey, else RGB."""
    test_dir = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
    split = (root / "train").is_dir() and test_dir is not None
    listings = [_listing(root / "train"), _listing(test_dir)] if split else [_listing(root)]
    if split and listings[0].classes != listings[1].classes:
        raise DataError(
            f"{root / 'train'} and {test_dir} hold different class folders: "
            f"{listings[0].classes} vs {listings[1].classes}"
        )
    channels = guess_channels([path for path, _ in listings[0].samples])
    count = sum(len(listing.samples) for listing in listings)
    stream, need, budget = _needs_streaming(count, channels, image_size, max_memory_gb)
    if stream:
        logger.info(
            "%s: %d images would take %.2f GB in memory (budget %.2f GB): read from disk batch by batch",
            root, count, need / 2**30, budget / 2**30,
        )  # fmt: skip
    scans = [
        scan_folder(listing.samples, channels, image_size, keep=not stream, workers=workers) for listing in listings
    ]
    empty = sorted(set(range(len(listings[0].classes))) - set(scans[0].labels.tolist()))
    if empty:
        names = ", ".join(listings[0].classes[i] for i in empty)
        raise DataError(f"{listings[0].root}: no readable image in class folder(s) {names}", path=root)
    train, test = scans if split else _hold_out(scans[0], test_fraction, seed)
    return DatasetBundle(
        name=str(root),
        train_images=train.images,
        train_labels=train.labels,
        test_images=test.images,
        test_labels=test.labels,
        class_names=tuple(listings[0].classes),
        normalization=Normalization(*pixel_statistics(train)),
        lineage=folder_checksum(train, test),
        skipped=sum((scan.skipped for scan in scans), ()),
    )


def _hold_out(scan: Scan, fraction: float, seed: int) -> tuple[Scan, Scan]:
    """(training, test) shares of a folder with no train/ + test/ split, drawn among its readable images."""
    test_idx = stratified_holdout(scan.labels, fraction, seed)
    keep = torch.ones(len(scan.paths), dtype=torch.bool)
    keep[test_idx] = False
    return scan.split(keep.nonzero().flatten(), test_idx)


def _listing(root: Path):  # -> torchvision.datasets.ImageFolder (lists the files; decodes nothing)
    from torchvision import datasets

    try:
        folder = datasets.ImageFolder(str(root))
    except (FileNotFoundError, OSError) as exc:
        raise DataError(f"{root}: {describe(exc)}; expected one sub-folder of images per class", path=root) from exc
    if len(folder.classes) < 2:
        raise DataError(f"{root}: found {len(folder.classes)} class folder(s); a classifier needs at least 2")
    return folder


def _needs_streaming(count: int, channels: int, size: int, max_memory_gb: float | None) -> tuple[bool, int, int]:
    """(stream?, bytes the uint8 tensors would take on this machine, the budget): each of torchrun's processes
    here (LOCAL_WORLD_SIZE) holds its own copy."""
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    need, budget = count * channels * size * size * local, memory_budget(max_memory_gb)
    return need > budget, need, budget


def stratified_holdout(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Indices of a seeded share taken from each class (at least one image per class)."""
    generator = torch.Generator().manual_seed(seed)
    picked = []
    for cls in labels.unique():
        members = (labels == cls).nonzero().flatten()
        if len(members) < 2:
            raise DataError(
                f"class {int(cls)} has {len(members)} image(s); each class needs at least 2 to hold one out for testing"
            )
        count = max(1, round(len(members) * fraction))
        picked.append(members[torch.randperm(len(members), generator=generator)[:count]])
    return torch.cat(picked).sort().values
