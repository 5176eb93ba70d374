"""``auto``: measure every candidate on this machine and keep the fastest that passes its gates.

Accuracy, top-1 agreement and max |Δlogit| against the fp32 graph on the real test images; batch-1 and
batch-32 latency with the candidates interleaved in one run (``edgecnn.bench``). Each candidate is judged
by its own mode's gates (:func:`edgecnn.export.gates.gates_for`), the same the parity check then applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.bench.timing import compare_latency
from edgecnn.config import REPORT_BATCH_SIZES
from edgecnn.export.gates import Gates, onnx_logits
from edgecnn.runtime.session import open_session

__all__ = ["TIE_TOLERANCE", "AutoRow", "AutoDecision", "choose_fastest"]

TIE_TOLERANCE = 0.03  # candidates within 3 % of the fastest count as tied: the smaller file wins


@dataclass(frozen=True)
class AutoRow:
    candidate: str
    accuracy: float
    drop_pp: float
    top1_agreement: float
    max_abs: float
    latency_ms: dict[str, float]  # p50 per batch size
    relative_time: float  # geometric mean over batch sizes of p50 / the reference's p50
    size_bytes: int
    eligible: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass(frozen=True)
class AutoDecision:
    chosen: str
    table: tuple[AutoRow, ...]
    max_accuracy_drop_pp: float
    rule: str = (
        f"fastest (geometric mean of batch-1 and batch-32 p50 vs fp32) within the gates; within "
        f"{TIE_TOLERANCE:.0%} of the fastest counts as a tie, won by the smaller file"
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen,
            "table": [row.to_dict() for row in self.table],
            "max_accuracy_drop_pp": self.max_accuracy_drop_pp,
            "rule": self.rule,
        }


def choose_fastest(
    paths: Mapping[str, Path],
    feed: np.ndarray,
    labels: np.ndarray,
    *,
    input_name: str,
    gates: Mapping[str, Gates],
    max_accuracy_drop: float,
    iters: int,
) -> AutoDecision:
    """``paths``: candidate name → file, the reference (fp32) first; ``gates``: each candidate's gates."""
    logits = {name: onnx_logits(open_session(path), input_name, feed, 256) for name, path in paths.items()}
    reference = next(iter(paths))
    latency = compare_latency(paths, feed, input_name=input_name, batch_sizes=REPORT_BATCH_SIZES, iters=iters)
    table = tuple(_row(name, path, logits, reference, labels, latency, gates[name]) for name, path in paths.items())
    eligible = [row for row in table if row.eligible] or [table[0]]  # the reference passes its own gates
    best = min(row.relative_time for row in eligible)
    tied = [row for row in eligible if row.relative_time <= best * (1 + TIE_TOLERANCE)]
    chosen = min(tied, key=lambda row: row.size_bytes).candidate
    return AutoDecision(chosen=chosen, table=table, max_accuracy_drop_pp=max_accuracy_drop)


def _row(
    name: str,
    path: Path,
    logits: Mapping[str, np.ndarray],
    reference: str,
    labels: np.ndarray,
    latency: Mapping[str, Mapping[str, float]],
    gates: Gates,
) -> AutoRow:
    ours, theirs = logits[name], logits[reference]
    accuracy = float((ours.argmax(1) == labels).mean())
    reference_accuracy = float((theirs.argmax(1) == labels).mean())
    agreement = float((ours.argmax(1) == theirs.argmax(1)).mean())
    max_abs = float(np.abs(ours - theirs).max())
    ratios = [latency[name][b] / latency[reference][b] for b in latency[reference]]
    failures = gates.failures(
        max_abs=max_abs, agreement=agreement, reference_accuracy=reference_accuracy, accuracy=accuracy, reference="fp32"
    )
    return AutoRow(
        candidate=name,
        accuracy=accuracy,
        drop_pp=round((reference_accuracy - accuracy) * 100, 4),
        top1_agreement=agreement,
        max_abs=max_abs,
        latency_ms=dict(latency[name]),
        relative_time=round(float(np.prod(ratios) ** (1 / len(ratios))), 4),
        size_bytes=Path(path).stat().st_size,
        eligible=not failures,
    )
