"""How well each ``fit`` mode reads the photo-like framings: accuracy per framing and fit mode."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgecnn.bench.framings import FRAMINGS, frame_all
from edgecnn.runtime.framing import FIT_MODES

__all__ = ["FitTable", "measure_fits"]


@dataclass(frozen=True)
class FitTable:
    model: str
    default_fit: str
    samples: int
    accuracy: dict[str, dict[str, float]]  # framing → fit mode → accuracy

    def baseline(self) -> float:
        """Accuracy on the original 28×28 images as the model was trained on them (stretch: no reframing)."""
        return self.accuracy["original 28×28"]["stretch"]

    def format(self) -> str:
        fits = list(next(iter(self.accuracy.values())))
        lines = [
            f"{self.model}: accuracy on {self.samples} real test images per framing (* = default fit, "
            f"{self.default_fit}; last column: default / original 28×28)",
            f"  {'framing':<20}"
            + "".join(f"{f + ('*' if f == self.default_fit else ''):>10}" for f in fits)
            + f"{'kept':>8}",
        ]
        for framing, row in self.accuracy.items():
            kept = row[self.default_fit] / self.baseline()
            lines.append(f"  {framing:<20}" + "".join(f"{row[f]:>10.2%}" for f in fits) + f"{kept:>8.1%}")
        return "\n".join(lines)


def measure_fits(
    predictor,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    framings: Sequence[str] = tuple(FRAMINGS),
    fits: Sequence[str] = FIT_MODES,
    seed: int = 0,
) -> FitTable:
    """``predictor`` (a :class:`~edgecnn.runtime.Predictor`) on ``images`` (uint8 N×H×W, dark background)
    in every framing, read with every fit mode that applies to the model."""
    usable = [f for f in fits if f != "digit" or predictor.card.input_shape[0] == 1]
    accuracy = {}
    for framing in framings:
        photos = frame_all(images, framing, seed=seed)
        accuracy[framing] = {
            fit: float(np.mean([p.index for p in predictor.predict(photos, fit=fit)] == labels)) for fit in usable
        }
    return FitTable(
        model=f"{predictor.card.arch} on {predictor.card.dataset}",
        default_fit=predictor.fit,
        samples=len(images),
        accuracy=accuracy,
    )
