"""Parity in the micrograd way: the same real test images through torch and through onnxruntime,
compared at every parity batch size, judged by the gates of :mod:`edgecnn.export.gates`."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from edgecnn.config import PARITY_BATCH_SIZES
from edgecnn.errors import ParityError
from edgecnn.export.gates import Gates, ParityReport, compare_logits, onnx_logits
from edgecnn.runtime.metadata import InputSpec
from edgecnn.runtime.preprocess import normalize, to_graph_input
from edgecnn.runtime.session import open_session

__all__ = ["measure_parity", "check_parity", "torch_logits"]


def measure_parity(
    model: nn.Module,
    onnx_path: str | os.PathLike[str],
    images: np.ndarray,
    labels: np.ndarray,
    *,
    spec: InputSpec,
    mean: Sequence[float],
    std: Sequence[float],
    gates: Gates,
    reference: np.ndarray | None = None,
) -> ParityReport:
    """Compare ``model`` with the graph on uint8 N×C×H×W ``images``: the report, passed or not (a graph
    that does not run is a :class:`ParityError`). ``reference``: the model's logits on ``images`` when
    already computed (every candidate of one export compares with the same)."""
    if reference is None:
        reference = torch_logits(model, normalize(images, mean, std))
    session = open_session(onnx_path)
    feed = to_graph_input(images, spec, mean, std)
    per_batch = {  # every batch size sees every image: the gates hold at each
        str(batch): compare_logits(onnx_logits(session, spec.name, feed, batch), reference, labels)
        for batch in PARITY_BATCH_SIZES
    }
    return ParityReport.judge(
        per_batch, samples=len(images), gates=gates, reference_accuracy=float((reference.argmax(1) == labels).mean())
    )


def check_parity(
    model: nn.Module,
    onnx_path: str | os.PathLike[str],
    images: np.ndarray,
    labels: np.ndarray,
    *,
    spec: InputSpec,
    mean: Sequence[float],
    std: Sequence[float],
    gates: Gates,
    reference: np.ndarray | None = None,
) -> ParityReport:
    """:func:`measure_parity`'s report, or :class:`ParityError` (carrying it) when a gate fails."""
    report = measure_parity(
        model, onnx_path, images, labels, spec=spec, mean=mean, std=std, gates=gates, reference=reference
    )
    if report.failures:
        message = f"{os.fspath(onnx_path)} disagrees with torch on {len(images)} test images: "
        raise ParityError(message + "; ".join(report.failures), report=report)
    return report


def torch_logits(model: nn.Module, inputs: np.ndarray, batch: int = 500) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return np.concatenate(
            [model(torch.from_numpy(inputs[i : i + batch])).numpy() for i in range(0, len(inputs), batch)]
        )
