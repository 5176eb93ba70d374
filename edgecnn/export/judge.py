"""The one judge of every export: a reference's logits on real labelled test images, computed once, and the
gates a file must keep against them — for ``edgecnn export`` (the reference is the torch model), ``edgecnn
verify`` (the same) and ``edgecnn quantize`` (the fp32 ONNX file). Each built file is compared with the
reference at every parity batch size (1 and 2 catch a batch axis fixed at export, 7 an odd remainder, 64 the
kernels' batched paths); what "agrees" means is :mod:`edgecnn.export.gates`. Tier 1: numpy and onnxruntime."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from edgecnn.card import Normalization
from edgecnn.config import PARITY_BATCH_SIZES
from edgecnn.errors import ParityError
from edgecnn.export.gates import ParityReport, compare_logits, onnx_logits
from edgecnn.runtime.gates import gates_for
from edgecnn.runtime.metadata import InputSpec
from edgecnn.runtime.preprocess import to_graph_input
from edgecnn.runtime.session import open_session

__all__ = ["Reference", "Judge", "onnx_reference", "graph_input", "reference_phrase"]

FP32_ONNX = "fp32 onnx"  # the reference's name when it is an fp32 ONNX file (edgecnn quantize)


@dataclass(frozen=True)
class Reference:
    """Labelled test images, the graph input they make, and the reference's logits on them."""

    name: str  # "torch", or "fp32 onnx"
    images: np.ndarray  # uint8 N×C×H×W
    labels: np.ndarray
    spec: InputSpec
    normalization: Normalization
    logits: np.ndarray

    @functools.cached_property
    def feed(self) -> np.ndarray:
        """The images as the graph takes them."""
        return graph_input(self.images, self.spec, self.normalization)

    @property
    def accuracy(self) -> float:
        return float((self.logits.argmax(1) == self.labels).mean())


def reference_phrase(name: str) -> str:
    """How a message names a reference: "torch", or "the fp32 file"."""
    return "the fp32 file" if name == FP32_ONNX else name


def graph_input(images: np.ndarray, spec: InputSpec, normalization: Normalization) -> np.ndarray:
    return to_graph_input(images, spec, normalization.mean, normalization.std)


def onnx_reference(
    path: str | os.PathLike[str], images: np.ndarray, labels: np.ndarray, spec: InputSpec, normalization: Normalization
) -> Reference:
    """An fp32 ONNX file as the reference: its logits on ``images``, once; NaN or infinite logits are refused."""
    logits = onnx_logits(open_session(path), spec.name, graph_input(images, spec, normalization), 256)
    if not np.isfinite(logits).all():
        raise ParityError("the fp32 file itself gives NaN or infinite logits on the labelled images")
    return Reference(FP32_ONNX, images, labels, spec, normalization, logits)


@dataclass(frozen=True)
class Judge:
    """A file against the reference under the gates of what it is (``exact``: an fp32 graph, held to the fp32
    gates; else a quantized one), with the accuracy budget of this export."""

    reference: Reference
    max_accuracy_drop: float

    def measure(self, path: str | os.PathLike[str], *, exact: bool) -> ParityReport:
        """The report, passed or not (a graph that does not run is a :class:`ParityError`)."""
        reference = self.reference
        session = open_session(path)
        per_batch = {  # every batch size sees every image: the gates hold at each
            str(batch): compare_logits(
                onnx_logits(session, reference.spec.name, reference.feed, batch), reference.logits, reference.labels
            )
            for batch in PARITY_BATCH_SIZES
        }
        return ParityReport.judge(
            per_batch,
            samples=len(reference.labels),
            reference_accuracy=reference.accuracy,
            gates=gates_for(exact, self.max_accuracy_drop),
            reference=reference.name,
        )

    def check(self, path: str | os.PathLike[str], *, exact: bool) -> ParityReport:
        """:meth:`measure`'s report, or :class:`ParityError` (carrying it) when a gate fails."""
        report = self.measure(path, exact=exact)
        if report.failures:
            raise ParityError(
                f"{os.fspath(path)} disagrees with {reference_phrase(report.reference)} "
                f"on {report.samples} test images: " + "; ".join(report.failures),
                report=report,
            )
        return report
