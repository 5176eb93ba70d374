"""The parity report: a file's logits against its reference at every parity batch size, judged by the gates
(:mod:`edgecnn.runtime.gates`, the one definition of "agrees"). No torch, no onnx: numpy and a session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecnn.errors import ParityError, describe
from edgecnn.runtime.gates import Gates
from edgecnn.runtime.session import ORT_ERRORS

__all__ = ["ParityReport", "onnx_logits", "compare_logits"]


@dataclass(frozen=True)
class ParityReport:
    """The same images through the reference and the ONNX model, at every parity batch size."""

    samples: int
    batch_sizes: dict[str, dict[str, float]]  # per batch size: max_abs, top1_agreement, accuracy
    max_abs: float  # the worst over batch sizes, as are the two below
    top1_agreement: float
    reference_accuracy: float  # the reference's accuracy on the same images
    onnx_accuracy: float
    gates: Gates
    failures: tuple[str, ...] = ()
    reference: str = "torch"  # what the ONNX model was compared with: "torch", or "fp32 onnx" (quantize)

    @classmethod
    def judge(
        cls,
        per_batch: dict[str, dict[str, float]],
        *,
        samples: int,
        reference_accuracy: float,
        gates: Gates,
        reference: str = "torch",
    ) -> ParityReport:
        """The report of per-batch-size figures (max_abs, top1_agreement, accuracy): the worst batch size
        counts for each, and the gates say what fails."""
        max_abs = max(b["max_abs"] for b in per_batch.values())
        agreement = min(b["top1_agreement"] for b in per_batch.values())
        accuracy = min(b["accuracy"] for b in per_batch.values())
        failures = gates.failures(
            max_abs=max_abs,
            agreement=agreement,
            reference_accuracy=reference_accuracy,
            accuracy=accuracy,
            reference=reference,
        )
        return cls(
            samples=samples,
            batch_sizes=per_batch,
            max_abs=max_abs,
            top1_agreement=agreement,
            reference_accuracy=reference_accuracy,
            onnx_accuracy=accuracy,
            gates=gates,
            failures=tuple(failures),
            reference=reference,
        )

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def delta_accuracy_pp(self) -> float:
        return round((self.onnx_accuracy - self.reference_accuracy) * 100, 4)

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "batch_sizes": self.batch_sizes,
            "max_abs": self.max_abs,
            "top1_agreement": self.top1_agreement,
            "reference": self.reference,
            "reference_accuracy": self.reference_accuracy,
            "onnx_accuracy": self.onnx_accuracy,
            "delta_accuracy_pp": self.delta_accuracy_pp,
            "gates": self.gates.to_dict(),
            "passed": self.passed,
            "failures": list(self.failures),
        }


def onnx_logits(session: Any, input_name: str, feed: np.ndarray, batch: int) -> np.ndarray:
    """The session's logits for ``feed`` in batches of ``batch``; a batch axis that is not really
    dynamic, or a run that fails, is a ParityError."""
    try:
        parts = [session.run(None, {input_name: feed[i : i + batch]})[0] for i in range(0, len(feed), batch)]
    except ORT_ERRORS as exc:
        raise ParityError(f"the ONNX model failed to run at batch size {batch}: {describe(exc)}") from exc
    logits = np.concatenate(parts)
    if logits.shape[0] != len(feed):
        raise ParityError(
            f"at batch size {batch} the ONNX model returned {logits.shape[0]} rows for "
            f"{len(feed)} images: its batch axis is not really dynamic"
        )
    return logits.astype(np.float32)


def compare_logits(logits: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """One batch size's figures: max |Δlogit|, top-1 agreement with the reference, accuracy."""
    return {
        "max_abs": float(np.abs(logits - reference).max()),
        "top1_agreement": float((logits.argmax(1) == reference.argmax(1)).mean()),
        "accuracy": float((logits.argmax(1) == labels).mean()),
    }
