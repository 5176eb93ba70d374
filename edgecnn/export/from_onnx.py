"""``edgecnn quantize``: an existing fp32 ONNX file (any exporter's) → the export job (variants.py), judged
against that fp32 file on real labelled images.

There is no torch model here, so the fp32 file is the reference: its logits on the labelled test images are
computed once and every candidate must keep its mode's gates against them (calibration samples the training
split). The data's classes must be the model's. The result carries metadata describing itself (mode, settings,
its own parity), never the fp32 file's. Tier 1: onnx and onnxruntime, no torch.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import onnx

from edgecnn.config import QuantizeConfig
from edgecnn.data.builtin import BUILTIN_CLASSES
from edgecnn.data.labelled import Labelled, open_labelled, seeded_images
from edgecnn.errors import ConfigError, ModelFileError, describe
from edgecnn.export.judge import Judge, onnx_reference
from edgecnn.export.modes import check_requested
from edgecnn.export.report import ExportReport
from edgecnn.export.variants import Job, export_variants
from edgecnn.files import check_writable, report_path, work_dir
from edgecnn.runtime.foreign import ForeignSpec, metadata_for, missing_description
from edgecnn.runtime.graphinfo import read_graph_info
from edgecnn.runtime.metadata import PREFIX, ModelMetadata, metadata_props
from edgecnn.runtime.session import open_session

__all__ = ["quantize_onnx"]

SEEDED_INPUTS = 1000  # seeded random images --mode dynamic is judged on when no labelled data is named


def quantize_onnx(model: str | Path, out: str | Path, config: QuantizeConfig) -> ExportReport:
    """Quantize ``model`` into ``out`` (and ``OUT.report.json``); raise ParityError if no variant passes."""
    src, out = Path(model), check_writable(out, what="out")
    check_writable(report_path(out), what="report")
    check_requested(config.mode)
    meta = _source_metadata(src, config)
    seeded = config.mode == "dynamic" and not (config.calibration or meta.card.dataset)  # no calibration needed
    if seeded:
        data = seeded_images(meta.card.input_shape, min(config.parity_samples, SEEDED_INPUTS), config.seed, ())
    else:
        data = _labelled(src, meta, config)
    card = meta.card if meta.card.dataset or seeded else dataclasses.replace(meta.card, dataset=data.name)
    with work_dir("quantize") as work:
        fp32 = work / "fp32.onnx"
        _single_file_copy(src, fp32)
        images, labels = data.parity_images(config.parity_samples)
        reference = onnx_reference(fp32, images, labels, meta.input, card.normalization)
        if seeded:  # no labels: the fp32 file's own answers are what the quantized file must keep
            reference = dataclasses.replace(reference, labels=reference.logits.argmax(axis=1))
        note = f"judged against the fp32 file on {data.name} (no labelled data given: accuracy is agreement)"
        job = Job(
            notes=(note,) if seeded else (),
            card=card,
            settings=config,
            requested=config.mode,
            judge=Judge(reference, config.max_accuracy_drop),
            train=data.train,
            dataset=data.name,
            opset=read_graph_info(src).opsets.get("ai.onnx", 0),
        )
        return export_variants(job, fp32, out, work)


def _labelled(src: Path, meta: ModelMetadata, config: QuantizeConfig) -> Labelled:
    """The labelled images to calibrate on and prove parity with, their classes checked against the model's."""
    source = config.calibration or meta.card.dataset
    if not source:
        raise ConfigError(
            f"{src} names no dataset: give --calibration mnist|fashion-mnist|DIR (labelled images "
            "to calibrate on and to prove parity with)"
        )
    # a folder without train/ + test/ is split as training splits it by default
    card = meta.card
    return open_labelled(
        source, shape=card.input_shape, classes=card.class_names, data_root=config.data_root, seed=config.seed
    )


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
    if PREFIX + "schema" not in metadata_props(session, source=str(src)):  # a foreign file: all it lacks, at once
        if foreign.classes is None and config.calibration in BUILTIN_CLASSES:
            foreign = dataclasses.replace(foreign, classes=BUILTIN_CLASSES[config.calibration])  # a known dataset's
        missing = [f"{name}= (--{name})" for name in missing_description(foreign)]
        if config.calibration is None and config.mode != "dynamic":
            missing.append("calibration= (--calibration: labelled images; mode dynamic needs none)")
        if missing:
            raise ModelFileError(f"{src} has no edgecnn metadata; to quantize it, give {', '.join(missing)}", path=src)
    meta = metadata_for(session, src, foreign)
    mode = meta.quantization.get("mode")
    if mode not in ("none", "unknown"):
        raise ConfigError(f"{src} is already quantized (mode {mode!r}); quantize its fp32 original instead")
    return meta
