"""``edgecnn check``: one model file on the targets' kernels, against the host's reference, under the gates
of the precision the file runs in.

The labelled images are prepared once, here, into the graph's input form; each target runs only the model
on them (:func:`~edgecnn.runtime.target_run.target_logits`). The reference is an fp32 file run here (the
zoo net's fp32 variant, or ``--reference``; export proved it against torch), else this file run here. Per
target: accuracy, top-1 agreement, Δaccuracy and max |Δlogit| against the reference, and max |Δlogit|
against this file run here (what the target's kernels alone change). A device install (the arm64 root)
also answers ``edgecnn info`` and ``edgecnn predict`` on a real image, which must match the host's.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgeCNNError
from edgecnn.files import file_sha256
from edgecnn.runtime.device_answers import with_device_answers
from edgecnn.runtime.gates import Gates, gates_for
from edgecnn.runtime.metadata import ModelMetadata
from edgecnn.runtime.session import open_session
from edgecnn.runtime.target_logits import run_logits
from edgecnn.runtime.target_run import target_logits
from edgecnn.runtime.targets import Target, get_target

__all__ = ["TargetResult", "CheckReport", "check_model", "judge_targets", "precision_of", "CHECK_BATCH"]

CHECK_BATCH = 64  # images a run on the target (the graph's own batch when it is fixed)
_PRECISIONS = {"none": "f32", "dynamic": "int8", "static": "int8", "fp16": "f16"}


@dataclass(frozen=True)
class TargetResult:
    target: str
    runtime: str = ""
    version: str = ""
    machine: str = ""
    accuracy: float | None = None
    agreement: float | None = None
    delta_accuracy_pp: float | None = None
    max_abs: float | None = None  # against the reference
    max_abs_native: float | None = None  # against this file run here
    failures: tuple[str, ...] = ()
    device: dict[str, str] = field(default_factory=dict)  # the device install's answers: "info", "predict"

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        keys = ("target", "runtime", "version", "machine", "accuracy", "agreement", "delta_accuracy_pp")
        row = {key: getattr(self, key) for key in (*keys, "max_abs", "max_abs_native")}
        cpu = get_target(self.target).cpu
        return {**row, "cpu": cpu, "passed": self.passed, "failures": list(self.failures), "device": self.device}


@dataclass(frozen=True)
class CheckReport:
    model: str
    sha256: str
    precision: str
    reference: str
    data: str
    samples: int
    reference_accuracy: float
    gates: Gates
    rows: tuple[TargetResult, ...]

    @property
    def failing(self) -> list[TargetResult]:
        return [row for row in self.rows if not row.passed]

    def failure_message(self) -> str:
        parts = [f"{row.target}: {'; '.join(row.failures)}" for row in self.failing]
        return f"{self.model} fails on {len(parts)} target(s): " + " — ".join(parts)

    def records(self) -> dict[str, dict[str, Any]]:
        """What ``--record`` writes into the file's metadata, per target."""
        today = datetime.date.today().isoformat()
        common = {"samples": self.samples, "data": self.data, "reference": self.reference, "date": today}
        keep = ("runtime", "version", "cpu", "agreement", "delta_accuracy_pp", "max_abs", "passed")
        return {row.target: {**{k: row.to_dict()[k] for k in keep}, **common} for row in self.rows}

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "sha256": self.sha256,
            "precision": self.precision,
            "reference": self.reference,
            "reference_accuracy": self.reference_accuracy,
            "data": self.data,
            "samples": self.samples,
            "gates": self.gates.to_dict(),
            "passed": not self.failing,
            "targets": [row.to_dict() for row in self.rows],
        }


def precision_of(meta: ModelMetadata) -> str:
    return _PRECISIONS.get(str(meta.quantization.get("mode", "none")), "int8")


def check_model(
    model: Path,
    meta: ModelMetadata,
    targets: Sequence[Target],
    *,
    feed: np.ndarray,
    labels: np.ndarray,
    data: str,
    reference: Path | None,
    max_accuracy_drop: float,
    device_image: Path | None = None,
    progress: Callable[[str], None] = lambda _line: None,
    jobs: int = 1,
) -> CheckReport:
    """Run ``model`` on each target and judge it against ``reference`` (else itself) run here."""
    ref_logits = run_logits(str(reference), feed, _batch(reference, len(feed))) if reference else None
    ref_name = f"{reference.name} run here" if reference else "this file run here"
    return judge_targets(
        model,
        targets,
        feed=feed,
        labels=labels,
        data=data,
        reference=(ref_name, ref_logits),
        precision=precision_of(meta),
        max_accuracy_drop=max_accuracy_drop,
        device_image=device_image,
        progress=progress,
        jobs=jobs,
    )


def judge_targets(
    model: Path,
    targets: Sequence[Target],
    *,
    feed: np.ndarray,
    labels: np.ndarray,
    data: str,
    reference: tuple[str, np.ndarray | None],
    precision: str,
    max_accuracy_drop: float,
    device_image: Path | None = None,
    progress: Callable[[str], None] = lambda _line: None,
    jobs: int = 1,
) -> CheckReport:
    """``model`` on each target against ``reference`` (its name and logits on ``feed``; None: the model run
    here); a target that does not run is a failing row saying why."""
    here = run_logits(str(model), feed, _batch(model, len(feed)))
    ref_name, ref_logits = reference[0], (here if reference[1] is None else reference[1])
    gates = gates_for(precision == "f32", max_accuracy_drop)
    ref_accuracy = float((ref_logits.argmax(1) == labels).mean())
    rows = []
    for target in targets:
        progress(f"check: {target.name} …")
        against = (ref_name, ref_logits, ref_accuracy)
        row = _on_target(target, model, (feed, here, labels), gates, against, jobs)
        if row.accuracy is not None and target.runner == "arm64-root" and device_image is not None:
            row = with_device_answers(row, target, model, device_image)
        rows.append(row)
        progress(f"check: {target.name}: {'passed' if row.passed else 'FAILED: ' + '; '.join(row.failures)}")
    sha = file_sha256(model)
    return CheckReport(str(model), sha, precision, ref_name, data, len(feed), ref_accuracy, gates, tuple(rows))


def _on_target(
    target: Target,
    model: Path,
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray],
    gates: Gates,
    reference: tuple[str, np.ndarray, float],
    jobs: int,
) -> TargetResult:
    feed, here, labels = arrays
    try:
        if target.runner == "host":
            logits, facts = here, _native_facts()
        else:
            logits, facts = target_logits(target, model, feed, _batch(model, len(feed)), jobs=jobs)
    except EdgeCNNError as exc:
        return TargetResult(target.name, failures=(f"did not run: {exc}",))
    return _judge(target, logits, facts, reference, here, labels, gates)


def _batch(model: Path, count: int) -> int:
    shape = open_session(model).get_inputs()[0].shape
    fixed = shape[0] if shape else None
    return fixed if isinstance(fixed, int) and fixed > 0 else min(CHECK_BATCH, max(count, 1))


def _native_facts() -> dict[str, Any]:
    import platform

    import onnxruntime as ort

    return {"runtime": "onnxruntime", "version": ort.__version__, "machine": platform.machine()}


def _judge(
    target: Target,
    logits: np.ndarray,
    facts: dict[str, Any],
    against: tuple[str, np.ndarray, float],
    here: np.ndarray,
    labels: np.ndarray,
    gates: Gates,
) -> TargetResult:
    reference_name, reference, reference_accuracy = against
    if logits.shape != reference.shape:
        return TargetResult(target.name, failures=(f"logits of shape {logits.shape}, expected {reference.shape}",))
    agreement = float((logits.argmax(1) == reference.argmax(1)).mean())
    accuracy = float((logits.argmax(1) == labels).mean())
    max_abs = _max_abs(logits, reference)
    failures = gates.failures(
        max_abs=max_abs,
        agreement=agreement,
        reference_accuracy=reference_accuracy,
        accuracy=accuracy,
        reference=reference_name,
    )
    return TargetResult(
        target.name,
        runtime=str(facts.get("runtime", "")),
        version=str(facts.get("version", "")),
        machine=str(facts.get("machine", "")),
        accuracy=accuracy,
        agreement=agreement,
        delta_accuracy_pp=round((accuracy - reference_accuracy) * 100, 6),
        max_abs=max_abs,
        max_abs_native=_max_abs(logits, here),
        failures=tuple(failures),
    )


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    with np.errstate(invalid="ignore"):
        value = float(np.abs(a.astype(np.float64) - b).max()) if a.size else 0.0
    return value if np.isfinite(value) else float("inf")
