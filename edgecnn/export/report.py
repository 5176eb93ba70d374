"""The export's report card (``MODEL.report.json``): what was built, what it costs, how well it agrees."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgecnn.export.gates import ParityReport
from edgecnn.export.graphs import compute_op_counts, op_counts
from edgecnn.files import file_sha256
from edgecnn.runtime.fastest import AutoDecision
from edgecnn.runtime.metadata import InputSpec
from edgecnn.runtime.timing import compare_latency

__all__ = ["ExportReport", "measure_report"]


@dataclass(frozen=True)
class ExportReport:
    model: str
    arch: str
    requested: str  # the mode asked for ("auto" included)
    mode: str  # the mode written
    input: InputSpec
    opset: int
    settings: Mapping[str, Any]  # the quantization settings stored in the model's metadata
    ops_before: dict[str, int]
    ops_after: dict[str, int]
    quantized_ops: dict[str, dict[str, int]]  # per op family: {"quantized": n, "of": nodes in fp32}
    size_bytes: dict[str, int]  # fp32, exported
    model_sha256: str  # of the file at `model` this card describes: a card left beside another file shows it
    accuracy: dict[str, Any]  # fp32 (torch), exported (worst batch size), delta_pp, samples, at training
    latency_ms_p50: dict[str, dict[str, float]]  # fp32, exported → batch size → p50 ms
    parity: ParityReport
    auto: AutoDecision | None = None
    warnings: tuple[str, ...] = ()
    targets: Mapping[str, Any] | None = None  # --targets: per candidate, its rows per target and the remedy used

    @property
    def size_ratio(self) -> float:
        return round(self.size_bytes["exported"] / self.size_bytes["fp32"], 4)

    @property
    def speedup(self) -> dict[str, float]:
        fp32, exported = self.latency_ms_p50["fp32"], self.latency_ms_p50["exported"]
        return {b: round(fp32[b] / exported[b], 3) for b in fp32}

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "arch": self.arch,
            "requested": self.requested,
            "mode": self.mode,
            "input": self.input.to_dict(),
            "opset": self.opset,
            "settings": dict(self.settings),
            "ops_before": self.ops_before,
            "ops_after": self.ops_after,
            "quantized_ops": self.quantized_ops,
            "size_bytes": self.size_bytes,
            "size_ratio": self.size_ratio,
            "model_sha256": self.model_sha256,
            "accuracy": self.accuracy,
            "latency_ms_p50": self.latency_ms_p50,
            "speedup": self.speedup,
            "parity": self.parity.to_dict(),
            "warnings": list(self.warnings),
            **({"targets": dict(self.targets)} if self.targets else {}),
        }


def measure_report(
    *,
    final: Path,
    fp32: Path,
    chosen: Path,
    feed: np.ndarray,
    iters: int,
    batch_sizes: tuple[int, ...],
    decision: AutoDecision | None,
) -> dict[str, Any]:
    """The measured part of the card: ops, int8 coverage, sizes and latency at ``batch_sizes`` (auto's own
    figures when auto measured them — the chosen configuration's, on its backend; fp32 and the export
    interleaved in one run on onnxruntime otherwise)."""
    before, after = onnx.load(str(fp32)), onnx.load(str(chosen))
    families_before = compute_op_counts(before)
    if decision is not None:
        latency = {"fp32": decision.reference.latency_ms, "exported": decision.row.latency_ms}
    elif fp32.read_bytes() == chosen.read_bytes():  # the fp32 graph itself: time it once
        only = compare_latency({"fp32": fp32}, feed, batch_sizes=batch_sizes, iters=iters)["fp32"]
        latency = {"fp32": only, "exported": only}
    else:
        latency = compare_latency({"fp32": fp32, "exported": chosen}, feed, batch_sizes=batch_sizes, iters=iters)
    return {
        "ops_before": op_counts(before),
        "ops_after": op_counts(after),
        "quantized_ops": {
            family: {"quantized": entry["quantized"], "of": families_before[family]["nodes"]}
            for family, entry in compute_op_counts(after).items()
        },
        "size_bytes": {"fp32": fp32.stat().st_size, "exported": final.stat().st_size},
        "model_sha256": file_sha256(final),  # the bytes the rename puts at `model`
        "latency_ms_p50": latency,
    }
