"""The scan of an image folder: every file decoded once, exactly as training sees it, in DataLoader workers.

Per image it keeps what does not depend on where the pixels then live: whether the file could be read (an
unreadable one is named in a warning, skipped and counted in metrics.json — never a crash at image 40,000),
its pixel sums (for the training split's mean and std, exact in integers) and a digest (the card's lineage);
and the pixels themselves only when the folder is to be held in memory. Otherwise the images stay on disk as
:class:`FolderImages`, which training reads batch by batch (batches.py).
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from edgecnn.data.folders import Sample, read_image, warn_unreadable
from edgecnn.errors import DataError
from edgecnn.training.distributed import from_env, gather_objects

__all__ = ["FolderImages", "Scan", "read_with_workers", "scan_folder"]


class FolderImages:
    """uint8 N×C×S×S images left on disk: indexing gives a view (no decoding), :meth:`decode` reads one."""

    def __init__(self, paths: tuple[str, ...], channels: int, size: int) -> None:
        self.paths, self.channels, self.size = paths, channels, size

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.paths), self.channels, self.size, self.size))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: slice | torch.Tensor | list[int]) -> FolderImages:
        if isinstance(index, slice):
            return FolderImages(self.paths[index], self.channels, self.size)
        index = torch.as_tensor(index)
        picked = (index.nonzero() if index.dtype == torch.bool else index).flatten().tolist()  # a mask, as a tensor's
        return FolderImages(tuple(self.paths[i] for i in picked), self.channels, self.size)

    def to(self, *_args: object, **_kwargs: object) -> FolderImages:
        """On disk whatever the device: each batch moves to it as it is read."""
        return self

    def decode(self, i: int) -> np.ndarray:
        return read_image(self.paths[i], (self.channels, self.size, self.size))

    def numpy(self) -> np.ndarray:
        """Every image, decoded (the whole view in memory: for the few a parity check or calibration takes)."""
        out = np.empty(tuple(self.shape), dtype=np.uint8)
        for i in range(len(self)):
            out[i] = self.decode(i)
        return out


@dataclass(frozen=True)
class Scan:
    """What the scan of one folder found, for its readable files (in listing order)."""

    paths: tuple[str, ...]
    labels: torch.Tensor  # int64 N
    sums: np.ndarray  # int64 N×C: each image's pixel sum per channel
    squares: np.ndarray  # int64 N×C: … and sum of squares
    digests: tuple[bytes, ...]  # SHA-256 of each image's uint8 C×S×S pixels
    skipped: tuple[tuple[str, str], ...]  # (file, why) of the files that could not be read
    images: torch.Tensor | FolderImages  # uint8 N×C×S×S in memory, or left on disk

    def split_at(self, count: int) -> tuple[Scan, Scan]:
        """The first ``count`` images and the rest; pixels held in memory are two views of the one array the scan
        filled: no second copy of a folder that only just fits its budget."""
        return self._take(slice(None, count)), self._take(slice(count, None))

    def _take(self, part: slice) -> Scan:
        return Scan(
            self.paths[part],
            self.labels[part],
            self.sums[part],
            self.squares[part],
            self.digests[part],
            self.skipped,
            self.images[part],
        )


class _Decoded(torch.utils.data.Dataset):
    def __init__(self, samples: list[Sample], channels: int, size: int, keep: bool) -> None:
        self.samples, self.channels, self.size, self.keep = samples, channels, size, keep

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, bytes, str | None]:
        try:
            pixels = read_image(self.samples[i][0], (self.channels, self.size, self.size))
        except DataError as exc:
            return None, np.zeros(0), np.zeros(0), b"", str(exc)
        wide = pixels.reshape(self.channels, -1).astype(np.int64)
        digest = hashlib.sha256(pixels.tobytes()).digest()
        return pixels if self.keep else None, wide.sum(1), (wide * wide).sum(1), digest, None


def read_with_workers(dataset: torch.utils.data.Dataset, **loader: Any) -> Iterator[Any]:
    """What a DataLoader over ``dataset`` yields, touching neither torch's global RNG nor the process's SIGCHLD
    handler. Torch installs a handler of its own, for good, the first time workers start; with it, a child's exit
    could crash the process later (seen twice here: segfaults once OpenVINO was loaded, and in matplotlib after a
    run had read a folder through workers). Without it torch still finds a dead worker, within its 5 s status
    check."""
    from torch.utils.data._utils import signal_handling

    installed = signal_handling._SIGCHLD_handler_set
    signal_handling._SIGCHLD_handler_set = True  # "already installed": torch leaves SIGCHLD alone
    try:
        # its own generator: a DataLoader otherwise draws its workers' base seed from torch's global RNG, and
        # dropout's masks would differ from the same run held in memory
        yield from torch.utils.data.DataLoader(dataset, generator=torch.Generator(), **loader)
    finally:
        signal_handling._SIGCHLD_handler_set = installed


def _decoded(samples: list[Sample], channels: int, size: int, *, keep: bool, workers: int) -> Iterator[Any]:
    """Each file's scan, in order. Several processes reading a folder from disk scan a share each (every
    world-th file) and gather the results (no pixels: small); a folder held in memory is decoded by each."""
    dist = from_env()
    sharded = not keep and dist.active and torch.distributed.is_initialized()
    mine = samples[dist.rank :: dist.world] if sharded else samples
    loader = read_with_workers(
        _Decoded(mine, channels, size, keep), batch_size=64, num_workers=workers, collate_fn=list
    )
    shown = dist.is_main and sys.stderr.isatty()  # a long scan shows it is moving; logs and pipes stay clean
    with tqdm(total=len(samples), desc="reading images", unit="image", disable=not shown, leave=False) as bar:
        if not sharded:
            yield from _counted(loader, bar, 1)
            return
        shares = gather_objects(list(_counted(loader, bar, dist.world)), dist)
    yield from (shares[i % dist.world][i // dist.world] for i in range(len(samples)))


def _counted(loader: Iterator[list[Any]], bar: tqdm, weight: int) -> Iterator[Any]:
    for chunk in loader:
        bar.update(len(chunk) * weight)
        yield from chunk


def scan_folder(samples: list[Sample], channels: int, size: int, *, keep: bool, workers: int) -> Scan:
    """Decode every file once (in ``workers`` processes; 0: here), keeping the pixels only when ``keep``."""
    kept, sums, squares, digests, skipped = [], [], [], [], []
    pixels = np.empty((len(samples) if keep else 0, channels, size, size), dtype=np.uint8)  # filled in place
    found = _decoded(samples, channels, size, keep=keep, workers=workers)
    for (path, label), (image, total, square, digest, error) in zip(samples, found, strict=True):
        if error is not None:
            skipped.append((path, error.removeprefix(f"cannot read image {path}: ")))
            continue
        kept.append((path, label))
        sums.append(total)
        squares.append(square)
        digests.append(digest)
        if keep:
            pixels[len(kept) - 1] = image
    if os.environ.get("RANK", "0") == "0":  # several processes: rank 0 speaks for them
        warn_unreadable(skipped, len(samples), where=" (all in metrics.json)")
    paths = tuple(p for p, _ in kept)
    images: torch.Tensor | FolderImages = (
        torch.from_numpy(pixels[: len(kept)]) if keep and kept else FolderImages(paths, channels, size)
    )
    return Scan(
        paths,
        torch.tensor([label for _, label in kept], dtype=torch.long),
        np.array(sums, dtype=np.int64).reshape(-1, channels),
        np.array(squares, dtype=np.int64).reshape(-1, channels),
        tuple(digests),
        tuple(skipped),
        images,
    )
