"""Labelled images at a model's input shape for export, ``edgecnn verify`` and ``edgecnn quantize``: a built-in
dataset or a user's folder, split as training split it, read lazily — parity reads the test images it uses,
calibration the training images it samples, nothing else is decoded.

A folder's files are read by :func:`edgecnn.data.folders.read_image`; an unreadable one is left out of what a
read returns and named in one warning line per read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edgecnn.data.builtin import BUILTIN_CLASSES, BUILTIN_DATASETS, BUILTIN_SHAPE, read_builtin
from edgecnn.data.folders import Sample, checked_folder, read_image, split_folder, warn_unreadable
from edgecnn.errors import DataError

__all__ = ["Split", "Labelled", "open_labelled", "seeded_images"]


class Split(Protocol):
    """One split's labels (known without reading an image) and its images, read when asked for."""

    labels: np.ndarray  # int64, one per image (a folder: per file, readable or not)
    shape: tuple[int, int, int]

    def __len__(self) -> int: ...

    def take(self, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 N×C×H×W images and their labels at ``indices`` (the unreadable left out)."""
        ...

    def first(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The first ``count`` readable images and their labels, in order."""
        ...


class _Arrays:
    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels, self.shape = images, labels, tuple(images.shape[1:])

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        index = np.asarray(indices, dtype=np.int64)
        return self.images[index], self.labels[index]

    def first(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        return self.images[:count], self.labels[:count]


class _Files:
    def __init__(self, samples: list[Sample], shape: tuple[int, int, int]) -> None:
        self.paths, self.shape = [path for path, _ in samples], shape
        self.labels = np.array([label for _, label in samples], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._read([int(i) for i in indices], len(indices))

    def first(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        return self._read(range(len(self)), count)

    def _read(self, order: Sequence[int], count: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``count`` readable images, tried in ``order``; the unreadable named in one warning."""
        count = min(count, len(order))  # parity asks for 10,000 by default: a folder may hold fewer
        images, kept, skipped = np.empty((count, *self.shape), dtype=np.uint8), [], []
        for i in order:
            if len(kept) == count:
                break
            try:
                images[len(kept)] = read_image(self.paths[i], self.shape)
            except DataError as exc:
                skipped.append((self.paths[i], str(exc).removeprefix(f"cannot read image {self.paths[i]}: ")))
                continue
            kept.append(i)
        warn_unreadable(skipped, len(kept) + len(skipped))
        return images[: len(kept)], self.labels[kept]


@dataclass(frozen=True)
class Labelled:
    name: str  # the dataset's name, or the folder as given
    class_names: tuple[str, ...]
    train: Split  # where calibration samples come from
    test: Split  # what parity is proved on

    def parity_images(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The first ``count`` readable test images and their labels; none at all is a DataError."""
        images, labels = self.test.first(count)
        if not len(images):
            raise DataError(f"{self.name}: none of its {len(self.test)} test image(s) can be read to prove parity on")
        return images, labels


def open_labelled(
    source: str,
    *,
    shape: tuple[int, int, int],
    classes: Sequence[str] | None = None,
    data_root: str | os.PathLike[str] | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Labelled:
    """``mnist``, ``fashion-mnist`` or a folder of class sub-folders (split by the folder rules with
    ``test_fraction`` and ``seed``, as training split it), at ``shape``; nothing decoded yet. ``classes``: the
    model's class names, which the data's must be (a folder's in any order: its labels are then numbered as the
    model numbers them); a mismatch is a DataError, never labels read as the wrong classes."""
    shape = tuple(int(d) for d in shape)  # type: ignore[assignment]
    if source in BUILTIN_DATASETS:
        if shape != BUILTIN_SHAPE:
            raise DataError(f"{source} is 1×28×28; the model takes {'×'.join(map(str, shape))}")
        train, test = (read_builtin(source, split, data_root) for split in ("train", "test"))
        data = Labelled(
            source, BUILTIN_CLASSES[source], _Arrays(train.images, train.labels), _Arrays(test.images, test.labels)
        )
    else:
        root = checked_folder(source, builtin=BUILTIN_DATASETS)
        splits = split_folder(root, test_fraction=test_fraction, seed=seed)
        data = Labelled(source, splits.classes, _Files(splits.train, shape), _Files(splits.test, shape))
    return data if classes is None else _numbered_as(data, tuple(classes))


def seeded_images(shape: tuple[int, int, int], count: int, seed: int, classes: Sequence[str]) -> Labelled:
    """``count`` uniformly random uint8 images at ``shape`` from ``seed``, labelled 0: inputs for a judge that
    needs no labels (a file held to another file's answers), as a Labelled whose both splits are they."""
    images = np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)
    split = _Arrays(images, np.zeros(count, dtype=np.int64))
    return Labelled(f"{count} seeded random inputs", tuple(classes), split, split)


def _numbered_as(data: Labelled, classes: tuple[str, ...]) -> Labelled:
    """``data`` with its labels numbered as ``classes`` number them; the same names or a DataError."""
    if sorted(data.class_names) != sorted(classes):
        raise DataError(
            f"{data.name} holds {len(data.class_names)} classes {_names(data.class_names)}; the model predicts "
            f"{len(classes)} {_names(classes)}: its labels would be read as the wrong classes"
        )
    number = np.array([classes.index(name) for name in data.class_names], dtype=np.int64)
    for split in (data.train, data.test):
        split.labels = number[split.labels]
    return Labelled(data.name, classes, data.train, data.test)


def _names(classes: tuple[str, ...], shown: int = 6) -> str:
    more = f", … ({len(classes) - shown} more)" if len(classes) > shown else ""
    return "(" + ", ".join(classes[:shown]) + more + ")"
