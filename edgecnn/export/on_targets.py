"""Export and quantize gated on targets (``--targets``): each candidate variant runs on every named target's
kernels (runtime/checking.py) against the job's reference, under the gates of its precision. A static int8
variant that fails is rebuilt with the known remedies, in order, until one passes everywhere:

1. ``int7`` weights (onnxruntime's reduce_range): on x86 without VNNI (the x86-64-v3 target) onnxruntime adds
   u8×s8 products in pairs into 16 bits (vpmaddubsw) and saturates when both are large; 7-bit weights keep
   every pair below 2¹⁵ (255·63·2), at half the weight resolution, on the same fast kernels;
2. ``uint8`` weights (U8U8): onnxruntime's u8×u8 kernels widen before adding and never saturate; 8-bit
   resolution, slower where VNNI would have run u8×s8.

A candidate no remedy rescues is refused with the reason; auto picks among those that pass. The targets run
:data:`TARGET_SAMPLES` of the parity images (emulated runs are ~10-50× slower; the zoo is checked on as many);
this machine ("native") is always among them. Tier 1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.errors import ParityError
from edgecnn.export.built import BuildContext, Built
from edgecnn.export.modes import get_mode
from edgecnn.runtime.checking import CheckReport, judge_targets
from edgecnn.runtime.target_run import require_ready as target_ready
from edgecnn.runtime.targets import Target, parse_targets

__all__ = ["TARGET_SAMPLES", "REMEDIES", "TargetGate", "Verdict", "rebuilder", "refused_error", "require_ready"]

TARGET_SAMPLES = 2000  # parity images each target runs: the zoo's verification size
REMEDIES = {
    "int7": "7-bit weights (reduce_range): no u8×s8 pair can saturate 16 bits on x86 without VNNI",
    "uint8": "uint8 weights (U8U8): onnxruntime's u8×u8 kernels never saturate",
}
_PRECISION = {"none": "f32", "fp16": "f16"}  # every other mode is int8


@dataclass(frozen=True)
class Verdict:
    """A candidate's fate on the targets: the file that passed (None: refused), its report, what was tried."""

    path: Path | None
    built: Built | None
    report: CheckReport
    tried: tuple[dict[str, Any], ...]  # each build: weights, remedy, failing targets
    remedy: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.path is not None,
            "remedy": self.remedy,
            "remedy_why": REMEDIES.get(self.remedy or ""),
            "tried": list(self.tried),
            **self.report.to_dict(),
        }

    def reason(self) -> str:
        return "; ".join(f"{t['weights'] or 'as built'}: {t['failing']}" for t in self.tried)


@dataclass(frozen=True)
class TargetGate:
    """The job's reference (name, feed, labels, logits) and the targets every candidate must pass."""

    targets: tuple[Target, ...]
    reference: Any  # export.judge.Reference
    data: str
    max_accuracy_drop: float

    @classmethod
    def for_names(cls, names: tuple[str, ...], reference: Any, data: str, max_accuracy_drop: float) -> TargetGate:
        chosen = parse_targets(",".join(("native", *names)))
        return cls(tuple(chosen), reference, data, max_accuracy_drop)

    def judge(self, name: str, path: Path) -> CheckReport:
        ref, count = self.reference, min(TARGET_SAMPLES, len(self.reference.labels))
        return judge_targets(
            path,
            self.targets,
            feed=ref.feed[:count],
            labels=ref.labels[:count],
            data=self.data,
            reference=(ref.name, ref.logits[:count]),
            precision=_PRECISION.get(name, "int8"),
            max_accuracy_drop=self.max_accuracy_drop,
        )

    def verdict(self, name: str, path: Path, built: Built, rebuild: Callable[[str, Path], Built]) -> Verdict:
        """``path`` if it passes; else, for static int8, each remedy rebuilt beside it until one passes."""
        report = self.judge(name, path)
        tried = [_attempt(None, report)]
        if not report.failing:
            return Verdict(path, built, report, tuple(tried))
        remedies = REMEDIES if name == "static" else {}
        for weights in remedies:
            fixed = path.with_name(f"{path.stem}.{weights}{path.suffix}")
            rebuilt = rebuild(weights, fixed)
            report = self.judge(name, fixed)
            tried.append(_attempt(weights, report))
            if not report.failing:
                return Verdict(fixed, rebuilt, report, tuple(tried), remedy=weights)
        return Verdict(None, None, report, tuple(tried))


def _attempt(weights: str | None, report: CheckReport) -> dict[str, Any]:
    failing = "; ".join(f"{row.target}: {', '.join(row.failures)}" for row in report.failing)
    return {"weights": weights, "passed": not report.failing, "failing": failing or "none"}


def rebuilder(name: str, fp32: Path, context: BuildContext) -> Callable[[str, Path], Built]:
    """Builds mode ``name`` from ``fp32`` again with other weights (a remedy), the rest of the settings kept."""

    def rebuild(weights: str, out: Path) -> Built:
        settings = dataclasses.replace(context.settings, weights=weights)
        return get_mode(name).build(fp32, out, dataclasses.replace(context, settings=settings))

    return rebuild


def require_ready(names: tuple[str, ...]) -> None:
    """Each named target exists and is ready here, else one TargetError naming what makes it ready."""
    for target in parse_targets(",".join(names)):
        target_ready(target)


def refused_error(out: Path, name: str, verdict: Verdict) -> ParityError:
    return ParityError(f"{out} not written: {name} fails on the targets: {verdict.reason()}", report=None)
