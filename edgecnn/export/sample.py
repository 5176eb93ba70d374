"""The calibration sample: a seeded, class-stratified share of the training split, read (only those images)
the first time a builder asks for it, as the graph takes it, with a manifest that says which it was."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecnn.card import Normalization
from edgecnn.data.labelled import Split
from edgecnn.runtime.metadata import InputSpec
from edgecnn.runtime.preprocess import to_graph_input

__all__ = ["CalibrationSample", "calibration_indices"]


def calibration_indices(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """A seeded, class-stratified sample: equal shares per class, interleaved, ``count`` in all."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = -(-count // len(classes))
    picks = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in classes]
    return np.array([p[i] for i in range(per_class) for p in picks if i < len(p)][:count], dtype=np.int64)


@dataclass(frozen=True)
class CalibrationSample:
    split: Split  # the training split
    count: int
    seed: int
    dataset: str
    spec: InputSpec
    normalization: Normalization

    @functools.cached_property
    def read(self) -> tuple[np.ndarray, dict[str, Any]]:
        """(the sample as the graph takes it, its manifest), read once."""
        picked = calibration_indices(self.split.labels, self.count, self.seed)
        images, _ = self.split.take(picked)
        digest = hashlib.sha256(",".join(map(str, picked.tolist())).encode()).hexdigest()
        manifest = {
            "samples": len(images),
            "seed": self.seed,
            "split": "train",
            "dataset": self.dataset,
            "manifest_sha256": digest,
        }
        norm = self.normalization
        return to_graph_input(images, self.spec, norm.mean, norm.std), manifest
