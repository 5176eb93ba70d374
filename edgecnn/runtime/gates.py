"""The parity gates: the one definition of "agrees" — for every export, ``edgecnn verify``, ``auto``'s choice
at export and ``edgecnn tune``'s on the device. Numbers only: no session, no reference of its own."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FP32_MAX_ABS", "QUANTIZED_MIN_AGREEMENT", "Gates", "gates_for", "gates_for_precision"]

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
