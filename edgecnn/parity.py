"""torch vs onnxruntime on real data: max-abs logit difference, top-1 agreement, Δaccuracy.

The same uint8 test images go through the torch model (normalised the training way) and through the
ONNX graph (fed by :func:`edgecnn.preprocess.to_graph_input`, the runtime's own path), at several
batch sizes, because a graph exported with a batch of 1 can silently specialise to it. A failed gate
raises :class:`ParityError` with the figures; it is never a warning.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from edgecnn.errors import ParityError
from edgecnn.metadata import InputSpec
from edgecnn.preprocess import normalize, to_graph_input
from edgecnn.quantize import QUANTIZED_MIN_AGREEMENT
from edgecnn.runtime import ORT_ERRORS, open_session

__all__ = ["BATCH_SIZES", "FP32_MAX_ABS", "QUANTIZED_MIN_AGREEMENT", "check_parity"]

BATCH_SIZES = (1, 2, 7, 64)
FP32_MAX_ABS = 1e-4  # float graphs must agree with torch to rounding noise


def check_parity(model: nn.Module, onnx_path: str | os.PathLike[str], images: np.ndarray, labels: np.ndarray,
                 *, spec: InputSpec, mean: Sequence[float], std: Sequence[float], exact: bool,
                 max_accuracy_drop: float = 0.3) -> dict[str, Any]:
    """Compare ``model`` with the graph on uint8 N×C×H×W ``images``; return the report or raise.

    ``exact``: the fp32 gates (max-abs ≤ 1e-4, 100 % agreement); else the quantized gates (≥ 99 %
    agreement, accuracy drop ≤ ``max_accuracy_drop`` percentage points).
    """
    reference = _torch_logits(model, normalize(images, mean, std))
    session = open_session(onnx_path)
    feed = to_graph_input(images, spec, mean, std)
    per_batch = {}
    outputs = {}
    for batch in BATCH_SIZES:  # every batch size sees every image: the gates hold at each
        outputs[batch] = _onnx_logits(session, spec.name, feed, batch)
        per_batch[str(batch)] = {"max_abs": float(np.abs(outputs[batch] - reference).max()),
                                 "top1_agreement": _agreement(outputs[batch], reference),
                                 "accuracy": float((outputs[batch].argmax(1) == labels).mean())}
    torch_acc = float((reference.argmax(1) == labels).mean())
    onnx_acc = min(b["accuracy"] for b in per_batch.values())
    report = {
        "samples": len(images),
        "batch_sizes": per_batch,
        "max_abs": max(b["max_abs"] for b in per_batch.values()),
        "top1_agreement": min(b["top1_agreement"] for b in per_batch.values()),
        "torch_accuracy": torch_acc,
        "onnx_accuracy": onnx_acc,
        "delta_accuracy_pp": round((onnx_acc - torch_acc) * 100, 4),  # the worst batch size's
        "gates": _gates(exact, max_accuracy_drop),
    }
    failures = _failures(report, exact, max_accuracy_drop)
    report["passed"] = not failures
    if failures:
        raise ParityError(f"{os.fspath(onnx_path)} disagrees with torch on {len(images)} test images: "
                          + "; ".join(failures))
    return report


def _torch_logits(model: nn.Module, inputs: np.ndarray, batch: int = 500) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(inputs[i:i + batch])).numpy()
                               for i in range(0, len(inputs), batch)])


def _onnx_logits(session, input_name: str, feed: np.ndarray, batch: int) -> np.ndarray:
    try:
        parts = [session.run(None, {input_name: feed[i:i + batch]})[0] for i in range(0, len(feed), batch)]
    except ORT_ERRORS as exc:
        raise ParityError(f"the ONNX model failed to run at batch size {batch}: "
                          f"{str(exc).strip().splitlines()[0][:200]}") from None
    logits = np.concatenate(parts)
    if logits.shape[0] != len(feed):
        raise ParityError(f"at batch size {batch} the ONNX model returned {logits.shape[0]} rows for "
                          f"{len(feed)} images: its batch axis is not really dynamic")
    return logits.astype(np.float32)


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.argmax(1) == b.argmax(1)).mean())


def _gates(exact: bool, max_drop: float) -> dict[str, float]:
    if exact:
        return {"max_abs": FP32_MAX_ABS, "top1_agreement": 1.0}
    return {"top1_agreement": QUANTIZED_MIN_AGREEMENT, "max_accuracy_drop_pp": max_drop}


def _failures(report: dict[str, Any], exact: bool, max_drop: float) -> list[str]:
    problems = []
    agreement = report["top1_agreement"]
    if exact:
        if not report["max_abs"] <= FP32_MAX_ABS:  # `not <=` also catches NaN
            problems.append(f"max |Δlogit| {report['max_abs']:.3g} > {FP32_MAX_ABS:g}")
        if agreement < 1.0:
            problems.append(f"top-1 agreement {agreement:.2%} < 100%")
        return problems
    if agreement < QUANTIZED_MIN_AGREEMENT:
        problems.append(f"top-1 agreement {agreement:.2%} < {QUANTIZED_MIN_AGREEMENT:.0%}")
    if -report["delta_accuracy_pp"] > max_drop:
        problems.append(f"accuracy {report['onnx_accuracy']:.2%} vs torch {report['torch_accuracy']:.2%}: "
                        f"drop {-report['delta_accuracy_pp']:.2f} pp > {max_drop:g} pp")
    return problems
