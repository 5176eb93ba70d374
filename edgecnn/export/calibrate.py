"""Static int8's calibration: the method the user named, used alone, or ``auto``: try each, keep the best.

``auto`` calibrates with minmax, percentile and entropy on the same seeded sample, measures each variant
with the gate the export must pass (the build context's judge: its reference, its labelled images, the
quantized gates), and keeps the most accurate that passes; ties go to the higher top-1 agreement, then to
the earlier method. Which method keeps a net within the gates depends on the net (a one-epoch keras_same on
Fashion-MNIST, the seed net of tests/export/test_calibrate.py, has missed the agreement gate with one method
and passed with another).

The kept variant's settings list every method tried with its figures, so the report card and the model's
metadata say what was tried. When none passes, the most accurate is kept all the same: the gate that
follows refuses it naming every method's figures (:func:`describe_tried`), and ``auto``'s table marks it
ineligible. The cost: two more calibrations and three parity runs on the parity images. Tier 1 (+ onnx).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.config import CALIBRATION_METHODS
from edgecnn.export.built import BuildContext, Built
from edgecnn.export.gates import ParityReport
from edgecnn.export.quantize import quantize_static_int8

__all__ = ["TRIED_METHODS", "RULE", "Attempt", "quantize_calibrated", "keep_best", "describe_tried"]

AUTO = CALIBRATION_METHODS[0]  # try each of the others
TRIED_METHODS = tuple(m for m in CALIBRATION_METHODS if m != AUTO)  # minmax, percentile, entropy: ties' order
RULE = "the most accurate that passes the gates; ties: the higher top-1 agreement, then " + ", ".join(TRIED_METHODS)


@dataclass(frozen=True)
class Attempt:
    """One calibration method's variant and its figures under the gate."""

    method: str
    path: Path
    built: Built
    parity: ParityReport

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "accuracy": self.parity.onnx_accuracy,
            "top1_agreement": self.parity.top1_agreement,
            "passed": self.parity.passed,
        }


def quantize_calibrated(src: Path, dst: Path, context: BuildContext) -> Built:
    """Static QDQ int8 of ``src`` at ``dst``, calibrated as ``context.settings.calibration_method`` says."""
    samples, manifest = context.calibration.read
    method = context.settings.calibration_method
    if method != AUTO:
        return _quantize(src, dst, context, method, samples, manifest)
    attempts = []
    for name in TRIED_METHODS:
        path = dst.with_name(f"{dst.stem}.{name}{dst.suffix}")
        built = _quantize(src, path, context, name, samples, manifest)
        attempts.append(Attempt(name, path, built, context.judge.measure(path, exact=False)))  # int8: not exact
    kept = keep_best(attempts)
    os.replace(kept.path, dst)
    calibration = {**kept.built.settings["calibration"], "tried": [a.to_dict() for a in attempts], "rule": RULE}
    return dataclasses.replace(kept.built, settings={**kept.built.settings, "calibration": calibration})


def keep_best(attempts: Sequence[Attempt]) -> Attempt:
    """The most accurate attempt that passes (the most accurate of all when none does); ties: the higher
    top-1 agreement, then the earlier in :data:`TRIED_METHODS`."""
    passing = [a for a in attempts if a.parity.passed] or list(attempts)
    return max(
        passing,
        key=lambda a: (a.parity.onnx_accuracy, a.parity.top1_agreement, -TRIED_METHODS.index(a.method)),
    )


def describe_tried(calibration: Mapping[str, Any]) -> str:
    """One line naming each method tried and its figures; empty when one method was named."""
    tried = calibration.get("tried")
    if not tried:
        return ""
    figures = "; ".join(
        f"{row['method']} {row['accuracy']:.2%} accuracy, {row['top1_agreement']:.2%} agreement, "
        + ("passed" if row["passed"] else "failed")
        for row in tried
    )
    return f"calibration methods tried: {figures}"


def _quantize(
    src: Path, dst: Path, context: BuildContext, method: str, samples: np.ndarray, manifest: dict[str, Any]
) -> Built:
    return quantize_static_int8(
        src,
        dst,
        samples,
        input_name=context.input_name,
        method=method,
        ops=context.settings.quantize_ops,
        manifest=manifest,
        weights=context.settings.weights,
    )
