"""Batches of uint8 images for training and evaluation, by index: sliced from the tensor in memory, or — an
image folder over the memory budget — decoded from its files through a DataLoader (by its workers, or in this
process: ``batch_workers``). The loop asks for the same
indices either way (every rank the same seeded order, its stride share of each global batch: the distributed
sampler's sharding, applied batch by batch), so both give the same pixels in the same order, and augmentation,
drawn afterwards in the training process from its own generator, the same draws.

A file that could be read at the scan but not now (deleted, or a disk error, mid-run) is left out of its batch,
named in a warning and counted in metrics.json; the run goes on — unless no file of a batch can be read (the
folder itself is gone): that ends the run with one error line, the last checkpoint kept.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from edgecnn.errors import DataError, DataWarning
from edgecnn.training.data import default_workers
from edgecnn.training.scan import FolderImages, read_with_workers

__all__ = ["batch_workers", "load_batches", "Unreadable"]

Unreadable = list[tuple[str, str]]  # (file, why) of files that failed while training read them


class _Files(torch.utils.data.Dataset):
    def __init__(self, images: FolderImages) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[np.ndarray | None, str | None]:
        try:
            return self.images.decode(i), None
        except DataError as exc:
            return None, str(exc)


def batch_workers(setting: int | None, device: torch.device) -> int:
    """DataLoader workers for batches read from disk: the setting, else this process's share of the cores on CUDA
    and none on the CPU, whose training threads already use the cores (tools/bench_folder.py, 2 cores: decoding
    in the training process trained 1.2–1.3× faster than with 1 or 2 workers)."""
    if setting is not None:
        return setting
    return default_workers() if device.type == "cuda" else 0


def _collate(items: list[tuple[np.ndarray | None, str | None]]) -> tuple[torch.Tensor, list[int], list[str]]:
    """The batch's readable images stacked, their positions in the batch, and the errors of the others."""
    good = [i for i, (image, _) in enumerate(items) if image is not None]
    stacked = torch.from_numpy(np.stack([items[i][0] for i in good])) if good else torch.empty(0, dtype=torch.uint8)
    return stacked, good, [error for _, error in items if error is not None]


def load_batches(
    images: torch.Tensor | FolderImages,
    labels: torch.Tensor,
    batches: Sequence[torch.Tensor],
    *,
    device: torch.device,
    workers: int,
    unreadable: Unreadable | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(uint8 images, labels) on ``device`` for each index tensor of ``batches``, in order."""
    if isinstance(images, torch.Tensor):
        for index in batches:
            yield images[index], labels[index]
        return
    loader = read_with_workers(
        _Files(images),
        batch_sampler=[index.tolist() for index in batches],
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=device.type == "cuda",
    )
    for index, (x, good, errors) in zip(batches, loader, strict=True):
        y = labels[index]
        if errors and not good:  # not one file of the batch: the folder is gone (a lost mount), not a bad file
            raise DataError(f"no image of a batch can be read any more; the first: {errors[0]}", path=images.paths[0])
        if errors:
            _report(errors, images, index, good, unreadable)
            y = y[torch.tensor(good, dtype=torch.long, device=y.device)]
        yield x.to(device, non_blocking=True), y


def _report(
    errors: list[str], images: FolderImages, index: torch.Tensor, good: list[int], unreadable: Unreadable | None
) -> None:
    read = set(good)
    failed = [images.paths[int(index[i])] for i in range(len(index)) if i not in read]
    for path, error in zip(failed, errors, strict=True):
        warnings.warn(f"skipped an image that can no longer be read: {error}", DataWarning, 3)
        if unreadable is not None:
            unreadable.append((path, error.removeprefix(f"cannot read image {path}: ")))
