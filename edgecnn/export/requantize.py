"""``edgecnn quantize``: an existing fp32 ONNX file → a quantized one, gated against that fp32 file.

There is no torch model here, so the fp32 file is the reference: every candidate must keep its mode's
gates against it on real labelled images (the test split; calibration uses the train split). The result
carries metadata describing itself (mode, settings, its own parity), never the fp32 file's. Tier 1:
onnx and onnxruntime, no torch.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import onnx

from edgecnn.config import PARITY_BATCH_SIZES, QuantizeConfig
from edgecnn.errors import ConfigError, ModelFileError, ParityError, describe
from edgecnn.export.gates import ParityReport, compare_logits, gates_for, onnx_logits
from edgecnn.export.labelled import load_labelled
from edgecnn.export.modes import get_mode
from edgecnn.export.pipeline import Inputs, build_candidates, gating_output, pick, write
from edgecnn.export.report import ExportReport
from edgecnn.files import check_writable, report_path, work_dir, write_json
from edgecnn.runtime.foreign import ForeignSpec, metadata_for
from edgecnn.runtime.graphinfo import read_graph_info
from edgecnn.runtime.metadata import ModelMetadata
from edgecnn.runtime.session import open_session

__all__ = ["quantize_onnx"]
_REFERENCE = "fp32 onnx"


def quantize_onnx(model: str | Path, out: str | Path, config: QuantizeConfig) -> ExportReport:
    """Quantize ``model`` into ``out`` (and ``OUT.report.json``); raise ParityError if no variant passes."""
    src, out = Path(model), check_writable(out, what="out")
    check_writable(report_path(out), what="report")
    meta = _source_metadata(src, config)
    source = config.calibration or meta.card.dataset
    if not source:
        raise ConfigError(
            f"{src} names no dataset: give --calibration mnist|fashion-mnist|DIR (labelled images "
            "to calibrate on and to prove parity with)"
        )
    data = load_labelled(source, shape=meta.card.input_shape, data_root=config.data_root, seed=config.seed)
    card = meta.card if meta.card.dataset else dataclasses.replace(meta.card, dataset=data.name)
    inputs = Inputs(
        card=card,
        spec=meta.input,
        config=config,
        requested=config.mode,
        images=data.test_images[: config.parity_samples],
        labels=data.test_labels[: config.parity_samples],
        train_images=data.train_images,
        train_labels=data.train_labels,
        dataset=data.name,
    )
    with work_dir("quantize") as work:
        fp32 = work / "fp32.onnx"
        _single_file_copy(src, fp32)
        candidates = build_candidates(inputs, fp32, work, judge=functools.partial(_measure, fp32, inputs))
        choice = pick(inputs, candidates)
        with gating_output(out, choice):
            parity = _gate(fp32, choice.candidate.path, inputs, choice.mode)
        report = write(inputs, out, fp32, choice, parity, opset=read_graph_info(src).opsets.get("ai.onnx", 0))
    write_json(report_path(out), report.to_dict())
    return report


def _single_file_copy(src: Path, dst: Path) -> None:
    """The model with any external weights (``MODEL.onnx.data``, torch.onnx.export's default) pulled in,
    so the quantizers, which work in a temporary folder, see every tensor."""
    try:
        model = onnx.load(str(src))  # reads external data relative to src's own folder
    except (OSError, ValueError, onnx.checker.ValidationError) as exc:
        raise ModelFileError(f"{src}: cannot read its weights ({describe(exc)})", path=src) from exc
    onnx.save(model, str(dst))


def _source_metadata(src: Path, config: QuantizeConfig) -> ModelMetadata:
    session = open_session(src)
    foreign = ForeignSpec(config.classes, config.mean, config.std, config.layout)
    if foreign.given and foreign.classes is None and config.calibration in ("mnist", "fashion-mnist"):
        from edgecnn.export.labelled import BUILTIN_CLASSES  # a foreign file calibrated on a known dataset

        foreign = dataclasses.replace(foreign, classes=BUILTIN_CLASSES[config.calibration])
    meta = metadata_for(session, src, foreign)
    mode = meta.quantization.get("mode")
    if mode not in ("none", "unknown"):
        raise ConfigError(f"{src} is already quantized (mode {mode!r}); quantize its fp32 original instead")
    return meta


def _measure(fp32: Path, inputs: Inputs, candidate: Path, mode: str) -> ParityReport:
    """``candidate`` against the fp32 file on the labelled images, under ``mode``'s gates: passed or not."""
    reference = onnx_logits(open_session(fp32), inputs.spec.name, inputs.feed, 256)
    if not np.isfinite(reference).all():
        raise ParityError("the fp32 file itself gives NaN or infinite logits on the labelled images")
    session = open_session(candidate)
    per_batch = {
        str(b): compare_logits(onnx_logits(session, inputs.spec.name, inputs.feed, b), reference, inputs.labels)
        for b in PARITY_BATCH_SIZES
    }
    accuracy = float((reference.argmax(1) == inputs.labels).mean())
    return ParityReport.judge(
        per_batch,
        samples=len(inputs.labels),
        reference_accuracy=accuracy,
        gates=gates_for(get_mode(mode).exact, inputs.config.max_accuracy_drop),
        reference=_REFERENCE,
    )


def _gate(fp32: Path, candidate: Path, inputs: Inputs, mode: str) -> ParityReport:
    report = _measure(fp32, inputs, candidate, mode)
    if report.failures:
        raise ParityError(
            f"{mode} disagrees with the fp32 file on {len(inputs.labels)} labelled images: "
            + "; ".join(report.failures),
            report=report,
        )
    return report
