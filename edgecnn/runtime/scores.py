"""What a model's scores become, and the checks on what goes in and comes out: :class:`Prediction`, :func:`softmax`,
:func:`all_finite` (the cheap finiteness check of ``Predictor.logits``' fast path) and
:func:`checked_graph_input` (its slow path, which explains itself)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecnn.errors import InputError, describe
from edgecnn.runtime.images import MAX_BATCH

__all__ = ["ZEROS", "Prediction", "softmax", "all_finite", "checked_graph_input"]


@dataclass(frozen=True)
class Prediction:
    label: str
    index: int
    probability: float
    top_k: tuple[tuple[str, float], ...]  # (label, probability), most probable first

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "index": self.index,
            "probability": self.probability,
            "top_k": [{"label": label, "probability": p} for label, p in self.top_k],
        }


ZEROS = np.zeros(1 << 16, np.float32)  # read-only: shared by every thread
ZEROS.flags.writeable = False
_FLOAT32 = np.dtype(np.float32)


def all_finite(a: np.ndarray) -> bool:
    """Whether a float array holds no NaN or infinity, cheaply for the small float32 arrays of a batch-1 call
    (np.isfinite(a).all() costs ~1.5 µs, 3 % of a 50 µs model; BENCHMARKS.md, "Tuning on the device"):
    - up to 64 values (a row of scores): their sum in Python floats, NaN or infinite exactly when one of them
      is — a float64 sum of float32 values cannot overflow;
    - up to 65,536 (an image): the dot product with zeros, NaN exactly when some element is NaN or infinite
      (0·inf and 0·NaN are NaN, 0·finite is 0), one BLAS call and no temporary."""
    if a.dtype == _FLOAT32:
        if a.size <= 64:
            return math.isfinite(sum(a.ravel().tolist()))
        if a.size <= ZEROS.size and a.flags.c_contiguous:
            return math.isfinite(np.vdot(a, ZEROS[: a.size]))
    return bool(np.isfinite(a).all())


def softmax(logits: np.ndarray) -> np.ndarray:
    """Each row's class probabilities from its logits (what :meth:`Predictor.predict_proba` returns)."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def checked_graph_input(x: Any, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    """``x`` as a C-contiguous array of the graph's dtype and per-image shape, or an InputError saying why not
    (what ``Predictor.logits`` does with anything off its fast path)."""
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x, dtype=dtype)
        except (ValueError, TypeError) as exc:
            raise InputError(f"cannot read the input as a {np.dtype(dtype).name} array: {describe(exc)}") from exc
    if x.dtype != dtype:
        raise InputError(
            f"logits() takes {np.dtype(dtype).name} input for this model; got {x.dtype} (use predict() for raw images)"
        )
    expected = ("N", *shape)
    if x.ndim != len(expected) or tuple(x.shape[1:]) != shape:
        raise InputError(f"expected input of shape {'×'.join(map(str, expected))}; got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise InputError("got an empty batch: pass at least one image")
    if x.shape[0] > MAX_BATCH:
        raise InputError(f"batch of {x.shape[0]} exceeds the limit of {MAX_BATCH}")
    if x.dtype == np.float32 and not np.isfinite(x).all():
        raise InputError("input contains NaN or infinite values")
    return np.ascontiguousarray(x)
