"""The parity gates and the parity report: the one definition of "agrees", used by every export,
``edgecnn verify`` and ``auto``'s choice. No torch, no onnx: numpy and an onnxruntime session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecnn.errors import ParityError, describe
from edgecnn.runtime.session import ORT_ERRORS

__all__ = [
    "FP32_MAX_ABS",
    "QUANTIZED_MIN_AGREEMENT",
    "Gates",
    "gates_for",
    "gates_for_precision",
    "ParityReport",
    "onnx_logits",
    "compare_logits",
]

FP32_MAX_ABS = 1e-4  # float graphs must agree with their reference to rounding noise
QUANTIZED_MIN_AGREEMENT = 0.99  # top-1 agreement an int8/fp16 graph must keep with its float original


@dataclass(frozen=True)
class Gates:
    """Limits a model must stay within against its reference; ``None`` means not gated."""

    min_agreement: float
    max_abs: float | None = None
    max_accuracy_drop_pp: float | None = None

    def failures(
        self, *, max_abs: float, agreement: float, reference_accuracy: float, accuracy: float, reference: str = "torch"
    ) -> list[str]:
        """Why the figures fail the gates, one phrase per gate; empty when they pass (NaN always fails)."""
        problems = []
        if self.max_abs is not None and not max_abs <= self.max_abs:  # `not <=` also catches NaN
            problems.append(f"max |Δlogit| {max_abs:.3g} > {self.max_abs:g}")
        if not agreement >= self.min_agreement:
            problems.append(f"top-1 agreement {agreement:.2%} < {self.min_agreement:.0%}")
        drop = round((reference_accuracy - accuracy) * 100, 9)  # 0.3 pp exactly is within a 0.3 pp budget
        if self.max_accuracy_drop_pp is not None and not drop <= self.max_accuracy_drop_pp:
            problems.append(
                f"accuracy {accuracy:.2%} vs {reference} {reference_accuracy:.2%}: "
                f"drop {drop:.2f} pp > {self.max_accuracy_drop_pp:g} pp"
            )
        return problems

    def to_dict(self) -> dict[str, float]:
        named = {
            "max_abs": self.max_abs,
            "top1_agreement": self.min_agreement,
            "max_accuracy_drop_pp": self.max_accuracy_drop_pp,
        }
        return {k: v for k, v in named.items() if v is not None}


def gates_for(exact: bool, max_accuracy_drop: float) -> Gates:
    """Exact (fp32): max |Δlogit| ≤ 1e-4 and 100 % agreement. Otherwise (int8, fp16): ≥ 99 % agreement
    and an accuracy drop within ``max_accuracy_drop`` percentage points."""
    if exact:
        return Gates(min_agreement=1.0, max_abs=FP32_MAX_ABS)
    return Gates(min_agreement=QUANTIZED_MIN_AGREEMENT, max_accuracy_drop_pp=max_accuracy_drop)


def gates_for_precision(precision: str, max_accuracy_drop: float) -> Gates:
    """The gate tier of what a configuration really computes in: "f32" is held to the exact gates; int8
    and the reduced floats ("f16", "bf16": OpenVINO's bf16 moved logits by ~0.05 in issue 12's
    measurements) to the quantized tier, each a precision of its own, named in the report card."""
    return gates_for(precision == "f32", max_accuracy_drop)


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
