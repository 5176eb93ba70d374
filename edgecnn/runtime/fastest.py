"""``auto``: measure every candidate configuration on this machine — a file variant (fp32, int8 …) on a
backend (onnxruntime, OpenVINO) in a precision (f32, int8, bf16 …) — and keep the fastest that passes.

Each candidate's logits are compared with onnxruntime fp32's on the real test images under the gates of
the precision it really runs in (:func:`edgecnn.export.gates.gates_for_precision`); its batch-1 and
batch-``hint`` latency is measured with every candidate interleaved in one run (``edgecnn.bench``).

The rule (:func:`decide`), in the words of issue 12's goals:
1. a candidate must pass its gates, and a file that runs on another backend must also pass on onnxruntime
   (the fallback when that backend is missing on the device);
2. it must not be slower than the reference at batch 1 or at the hint batch;
3. of those, the fastest at the hint batch wins; candidates within ``TIE_TOLERANCE`` of it are a tie,
   won by the fastest at batch 1.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.runtime.backends import Engine
from edgecnn.runtime.fingerprint import Fingerprint, this_machine
from edgecnn.runtime.gates import Gates
from edgecnn.runtime.timing import Clock, p50_by_batch

__all__ = [
    "TIE_TOLERANCE",
    "REFERENCE",
    "Contender",
    "AutoRow",
    "AutoDecision",
    "choose_fastest",
    "decide",
    "batched_logits",
    "judged_row",
]

TIE_TOLERANCE = 0.03  # within 3 % of the fastest at the hint batch counts as tied: batch 1 decides
REFERENCE = "none"  # onnxruntime running the fp32 file: what every candidate is compared with
SETTLE = 0.005  # s between blocks: onnxruntime candidates spin, as a Predictor does, and must park first


@dataclass(frozen=True)
class Contender:
    """One candidate configuration, loaded: a file on an engine, and the gates of what it runs in."""

    name: str  # "static"; "static@openvino"; "none@openvino:bf16"
    mode: str  # the file variant (a quantization mode)
    path: Path
    engine: Engine  # what runs it: backend, device, the precision it really computes in
    gates: Gates
    hint: str | None = None  # the precision asked of the backend (OpenVINO's hint); None: the file's own
    threads: int | None = None  # None: the thread policy's (runtime/threads.py), as at export
    spinning: bool | None = None  # onnxruntime's idle workers busy-wait; None: the policy's


@dataclass(frozen=True)
class AutoRow:
    candidate: str
    mode: str
    backend: str
    precision: str  # what the compute really runs in
    hint: str | None
    accuracy: float
    drop_pp: float
    top1_agreement: float
    max_abs: float
    latency_ms: dict[str, float]  # p50 per batch size
    size_bytes: int
    passes_gates: bool
    eligible: bool = False
    why_not: str = ""  # empty when eligible
    threads: int | None = None
    spinning: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass(frozen=True)
class AutoDecision:
    chosen: str
    table: tuple[AutoRow, ...]
    max_accuracy_drop_pp: float
    batch_size_hint: int
    machine: Fingerprint = dataclasses.field(default_factory=this_machine)  # where the table was measured
    reference_name: str = REFERENCE  # the row every candidate was compared with
    rule: str = (
        "passes its gates (and on onnxruntime too), not slower than onnxruntime fp32 at batch 1 or the hint "
        f"batch; the fastest at the hint batch, within {TIE_TOLERANCE:.0%} a tie won at batch 1"
    )

    @property
    def row(self) -> AutoRow:
        """The chosen candidate's row."""
        return self._named(self.chosen)

    @property
    def reference(self) -> AutoRow:
        """onnxruntime running the fp32 file (or on the device without it, the file itself): the row every
        candidate was compared with."""
        return self._named(self.reference_name)

    def _named(self, candidate: str) -> AutoRow:
        return next(row for row in self.table if row.candidate == candidate)

    @property
    def runtime(self) -> dict[str, Any]:
        """What the Predictor's ``backend="auto"`` reads back: the backend and precision auto measured."""
        row = self.row
        runtime: dict[str, Any] = {"backend": row.backend, "precision": row.precision, "hint": row.hint}
        if row.threads is not None:  # tuned on the device: the threads and spinning it measured
            runtime.update(threads=row.threads, spinning=row.spinning)
        return runtime

    def to_dict(self) -> dict[str, Any]:
        data = {
            "chosen": self.chosen,
            "runtime": self.runtime,
            "table": [row.to_dict() for row in self.table],
            "max_accuracy_drop_pp": self.max_accuracy_drop_pp,
            "batch_size_hint": self.batch_size_hint,
            "rule": self.rule,
            "machine": self.machine.to_dict(),
        }
        if self.reference_name != REFERENCE:
            data["reference"] = self.reference_name
        return data


def choose_fastest(
    contenders: Sequence[Contender],
    feed: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size_hint: int,
    max_accuracy_drop: float,
    iters: int,
    clock: Clock = time.perf_counter,
) -> AutoDecision:
    """Measure ``contenders`` (onnxruntime fp32, named "none", among them) and decide."""
    logits = {c.name: batched_logits(c.engine.run, feed) for c in contenders}
    runs = {c.name: c.engine.run for c in contenders}
    latency = p50_by_batch(runs, feed, batch_sizes=(1, batch_size_hint), iters=iters, clock=clock, settle=SETTLE)
    table = [judged_row(c, logits[c.name], logits[REFERENCE], labels, latency[c.name]) for c in contenders]
    return decide(table, batch_size_hint=batch_size_hint, max_accuracy_drop=max_accuracy_drop)


def decide(
    rows: Sequence[AutoRow], *, batch_size_hint: int, max_accuracy_drop: float, reference: str = REFERENCE
) -> AutoDecision:
    """The rule of this module's docstring over measured rows; the reference always qualifies."""
    by_name = {row.candidate: row for row in rows}
    base = by_name[reference].latency_ms
    hint = str(batch_size_hint)
    against = "onnxruntime fp32" if reference == REFERENCE else f"the {reference} file on onnxruntime"
    judged = []
    for row in rows:
        why = "" if row.candidate == reference else _why_not(row, by_name, base, against)
        judged.append(dataclasses.replace(row, eligible=not why, why_not=why))
    eligible = [row for row in judged if row.eligible]
    best = min(row.latency_ms[hint] for row in eligible)
    tied = [row for row in eligible if row.latency_ms[hint] <= best * (1 + TIE_TOLERANCE)]
    chosen = min(tied, key=lambda row: row.latency_ms["1"]).candidate
    return AutoDecision(chosen, tuple(judged), max_accuracy_drop, batch_size_hint, reference_name=reference)


def _why_not(row: AutoRow, rows: Mapping[str, AutoRow], base: Mapping[str, float], against: str) -> str:
    if not row.passes_gates:
        return "fails its gates"
    fallback = rows.get(row.mode)
    if row.backend != "onnxruntime" and (fallback is None or not fallback.passes_gates):
        return f"the {row.mode} file fails its gates on onnxruntime, the fallback"
    slower = [b for b, ms in base.items() if row.latency_ms[b] > ms]
    return f"slower than {against} at batch {' and '.join(slower)}" if slower else ""


def batched_logits(run: Callable[[np.ndarray], np.ndarray], feed: np.ndarray, batch: int = 256) -> np.ndarray:
    """``run``'s scores for every row of ``feed``, in batches of ``batch``, as float32."""
    return np.concatenate([run(feed[i : i + batch]) for i in range(0, len(feed), batch)]).astype(np.float32)


def judged_row(
    contender: Contender,
    ours: np.ndarray,
    theirs: np.ndarray,
    labels: np.ndarray | None,
    latency: dict[str, float],
) -> AutoRow:
    """The contender's figures against the reference's logits, under its gates. Without ``labels`` only the
    exact gates can be judged (accuracy is then NaN, and an accuracy gate fails)."""
    agreement = float((ours.argmax(1) == theirs.argmax(1)).mean())
    max_abs = float(np.abs(ours - theirs).max())
    if labels is None:
        accuracy = reference_accuracy = float("nan")
    else:
        accuracy = float((ours.argmax(1) == labels).mean())
        reference_accuracy = float((theirs.argmax(1) == labels).mean())
    failures = contender.gates.failures(
        max_abs=max_abs, agreement=agreement, reference_accuracy=reference_accuracy, accuracy=accuracy, reference="fp32"
    )
    return AutoRow(
        candidate=contender.name,
        mode=contender.mode,
        backend=contender.engine.backend,
        precision=contender.engine.precision,
        hint=contender.hint,
        accuracy=accuracy,
        drop_pp=round((reference_accuracy - accuracy) * 100, 4),
        top1_agreement=agreement,
        max_abs=max_abs,
        latency_ms=latency,
        size_bytes=contender.path.stat().st_size,
        passes_gates=not failures,
        threads=contender.threads,
        spinning=contender.spinning,
    )
