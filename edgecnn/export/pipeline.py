"""The steps every export shares, from an fp32 ONNX file on: build candidates → pick → (gate) → write.

``edgecnn export`` (from a checkpoint, gated against torch) and ``edgecnn quantize`` (from an fp32 ONNX
file, gated against that file) differ only in where the fp32 graph and the reference come from. Tier 1:
numpy, onnx, onnxruntime; no torch.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgecnn.card import ModelCard
from edgecnn.errors import ParityError
from edgecnn.export.auto import AutoDecision, choose_fastest
from edgecnn.export.calibrate import describe_tried
from edgecnn.export.contenders import available_backends, open_contenders
from edgecnn.export.gates import ParityReport
from edgecnn.export.graphs import write_metadata
from edgecnn.export.modes import AUTO, BuildContext, Built, auto_candidates, get_mode
from edgecnn.export.report import ExportReport, measure_report
from edgecnn.files import atomic_path
from edgecnn.runtime.metadata import InputSpec, ModelMetadata, read_metadata
from edgecnn.runtime.preprocess import to_graph_input
from edgecnn.runtime.session import open_session

__all__ = [
    "Inputs",
    "Judge",
    "Candidate",
    "Choice",
    "calibration_indices",
    "build_candidates",
    "pick",
    "gating_output",
    "write",
]


@dataclass(frozen=True)
class Inputs:
    """What every step reads: the model's card and graph input, the settings, and real labelled data."""

    card: ModelCard
    spec: InputSpec
    config: Any  # ExportConfig or QuantizeConfig: the fields the builders and the gates read
    requested: str  # a mode name or "auto"
    images: np.ndarray  # uint8 N×C×H×W test images (parity and auto)
    labels: np.ndarray
    train_images: np.ndarray  # uint8 N×C×H×W, where calibration samples come from
    train_labels: np.ndarray
    dataset: str

    @functools.cached_property
    def feed(self) -> np.ndarray:
        """The test images as the graph takes them."""
        return self.graph_input(self.images)

    def graph_input(self, images: np.ndarray) -> np.ndarray:
        return to_graph_input(images, self.spec, self.card.normalization.mean, self.card.normalization.std)


Judge = Callable[[Path, str], ParityReport]  # a built file and its mode → its gate's report, passed or not


@dataclass(frozen=True)
class Candidate:
    path: Path
    built: Built


@dataclass(frozen=True)
class Choice:
    mode: str
    candidate: Candidate
    decision: AutoDecision | None  # auto's measurements, when auto chose


def calibration_indices(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """A seeded, class-stratified sample: equal shares per class, interleaved, ``count`` in all."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = -(-count // len(classes))
    picks = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in classes]
    return np.array([p[i] for i in range(per_class) for p in picks if i < len(p)][:count], dtype=np.int64)


def _calibration(inputs: Inputs) -> tuple[np.ndarray, dict[str, Any]]:
    config = inputs.config
    picked = calibration_indices(inputs.train_labels, config.calibration_samples, config.seed)
    digest = hashlib.sha256(",".join(map(str, picked.tolist())).encode()).hexdigest()
    manifest = {
        "samples": len(picked),
        "seed": config.seed,
        "split": "train",
        "dataset": inputs.dataset,
        "manifest_sha256": digest,
    }
    return inputs.graph_input(inputs.train_images[picked]), manifest


def build_candidates(inputs: Inputs, fp32: Path, work: Path, *, judge: Judge) -> dict[str, Candidate]:
    """The requested mode's variant, or every auto candidate that changed something (fp32 first).
    ``judge``: the gate the export must pass, for builders that choose among variants by it (static)."""
    names = auto_candidates() if inputs.requested == AUTO else [inputs.requested]
    calibration = functools.cache(lambda: _calibration(inputs))
    context = BuildContext(config=inputs.config, input_name=inputs.spec.name, calibration=calibration, judge=judge)
    candidates = {}
    for name in names:
        path = work / f"{name}.onnx"
        built = get_mode(name).build(fp32, path, context)
        if inputs.requested == AUTO and built.unchanged:  # the fp32 graph under another name
            continue
        candidates[name] = Candidate(path, built)
    return candidates


def pick(inputs: Inputs, candidates: dict[str, Candidate]) -> Choice:
    """The requested mode's file, or auto's choice among every candidate file on every available backend."""
    if inputs.requested != AUTO:
        return Choice(inputs.requested, candidates[inputs.requested], None)
    config = inputs.config
    contenders = open_contenders(
        {name: c.path for name, c in candidates.items()},
        backends=available_backends(config.backends),
        max_accuracy_drop=config.max_accuracy_drop,
    )
    decision = choose_fastest(
        contenders,
        inputs.feed,
        inputs.labels,
        batch_size_hint=config.batch_size_hint,
        max_accuracy_drop=config.max_accuracy_drop,
        iters=config.latency_iters,
    )
    mode = decision.row.mode
    return Choice(mode, candidates[mode], decision)


@contextlib.contextmanager
def gating_output(out: Path, choice: Choice) -> Iterator[None]:
    """Re-raise a failed gate naming the user's ``out`` and the mode: the candidate file the gate read
    lives in a temporary folder that is gone by the time anyone reads the message. A static variant
    whose calibration methods were all tried names each one's figures too."""
    mode = choice.mode
    try:
        yield
    except ParityError as exc:
        report = exc.report
        if report is None or not report.failures:  # the model did not run: its own message says why
            raise ParityError(f"{out} not written: {mode}: {exc}", report=report) from exc
        reference = "the fp32 file" if report.reference == "fp32 onnx" else report.reference
        tried = describe_tried(choice.candidate.built.settings.get("calibration", {}))
        raise ParityError(
            f"{out} not written: {mode} disagrees with {reference} on {report.samples} test images: "
            + "; ".join(report.failures)
            + (f" ({tried})" if tried else ""),
            report=report,
        ) from exc


def write(inputs: Inputs, out: Path, fp32: Path, choice: Choice, parity: ParityReport, *, opset: int) -> ExportReport:
    """The chosen variant with metadata describing THIS file at ``out`` (atomically, after a read-back)."""
    decision = choice.decision
    settings = {"mode": choice.mode, **choice.candidate.built.settings}
    if decision:
        settings["auto"] = decision.to_dict()
    meta = ModelMetadata(card=inputs.card, input=inputs.spec, quantization=settings, parity=parity.to_dict())
    with atomic_path(out) as final:
        write_metadata(onnx.load(str(choice.candidate.path)), meta, final)
        read_metadata(open_session(final), source=str(out))  # the runtime loads it and reads it back
        measured = measure_report(
            final=final,
            fp32=fp32,
            chosen=choice.candidate.path,
            feed=inputs.feed,
            spec=inputs.spec,
            iters=inputs.config.latency_iters,
            batch_sizes=(1, inputs.config.batch_size_hint),
            decision=decision,
        )
        report = _report(inputs, out, choice, settings, parity, opset, measured)
    return report


def _report(
    inputs: Inputs,
    out: Path,
    choice: Choice,
    settings: dict[str, Any],
    parity: ParityReport,
    opset: int,
    measured: dict[str, Any],
) -> ExportReport:
    accuracy = {
        "fp32": parity.reference_accuracy,
        "exported": parity.onnx_accuracy,
        "delta_pp": parity.delta_accuracy_pp,
        "samples": parity.samples,
        "fp32_test_accuracy_at_training": inputs.card.test_accuracy,
    }
    return ExportReport(
        model=str(out),
        arch=inputs.card.arch,
        requested=inputs.requested,
        mode=choice.mode,
        input=inputs.spec,
        opset=opset,
        settings=settings,
        accuracy=accuracy,
        parity=parity,
        auto=choice.decision,
        warnings=choice.candidate.built.warnings,
        **measured,
    )
