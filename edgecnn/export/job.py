"""The job behind ``edgecnn export``: build candidates → pick → gate → write.

checkpoint → fp32 graph → the requested mode's variant (or every ``auto`` candidate) → the pick → the
parity gate → ``MODEL.onnx`` with metadata, then ``MODEL.report.json``. Everything happens in a temporary
directory; the model reaches ``out`` through an atomic rename, so a failed gate, an error or Ctrl-C
leaves nothing at ``out`` (an older file there stays as it was).
"""

from __future__ import annotations

import functools
import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from edgecnn.config import ExportConfig
from edgecnn.export.auto import AutoDecision, choose_fastest
from edgecnn.export.gates import ParityReport, gates_for
from edgecnn.export.graphs import write_metadata
from edgecnn.export.modes import AUTO, BuildContext, Built, auto_candidates, get_mode
from edgecnn.export.parity import check_parity
from edgecnn.export.report import ExportReport, measure_report
from edgecnn.export.to_onnx import BakedPreprocessing, export_onnx
from edgecnn.files import atomic_path, report_path, write_json
from edgecnn.runtime.metadata import InputSpec, ModelMetadata, read_metadata
from edgecnn.runtime.preprocess import to_graph_input
from edgecnn.runtime.session import open_session
from edgecnn.training.checkpoint import Checkpoint, load_checkpoint
from edgecnn.training.data import DatasetBundle, load_dataset_for

__all__ = ["export_checkpoint", "verify_export", "calibration_indices"]


@dataclass(frozen=True)
class _Job:
    """What every step of one export reads."""

    checkpoint: Checkpoint
    model: nn.Module
    config: ExportConfig
    spec: InputSpec
    data: DatasetBundle
    images: np.ndarray  # uint8 N×C×H×W test images for parity and auto
    labels: np.ndarray
    feed: np.ndarray  # the same images as the graph takes them

    @property
    def norm(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return self.checkpoint.card.normalization.mean, self.checkpoint.card.normalization.std


@dataclass(frozen=True)
class _Candidate:
    path: Path
    built: Built


@dataclass(frozen=True)
class _Choice:
    mode: str
    candidate: _Candidate
    decision: AutoDecision | None  # auto's measurements, when auto chose


def export_checkpoint(checkpoint: str | Path, out: str | Path, config: ExportConfig) -> ExportReport:
    """Export, quantize, verify; write ``out`` and its report card; return the report card."""
    out = Path(out)
    job = _prepare(checkpoint, config)
    with tempfile.TemporaryDirectory(prefix="edgecnn-export-") as tmp:
        work = Path(tmp)
        graph = BakedPreprocessing(job.model, *job.norm) if job.spec.baked else job.model
        fp32 = export_onnx(
            graph,
            work / "fp32.onnx",
            input_shape=job.spec.graph_shape,
            opset=config.opset,
            input_dtype=torch.uint8 if job.spec.baked else torch.float32,
        )
        candidates = _build_candidates(job, fp32, work)
        choice = _pick(job, candidates)
        parity = _gate(job, choice.mode, choice.candidate.path)
        report = _write(job, out, fp32, choice, parity)
    write_json(report_path(out), report.to_dict())  # after the model: a crash between leaves a verified model
    return report


def _prepare(checkpoint: str | Path, config: ExportConfig) -> _Job:
    saved = load_checkpoint(checkpoint)
    data = load_dataset_for(saved.config, config.data_root)
    spec = InputSpec(shape=saved.card.input_shape, baked=config.bake_preprocessing)
    images = data.test_images[: config.parity_samples].numpy()
    norm = saved.card.normalization
    return _Job(
        checkpoint=saved,
        model=saved.build_model(),
        config=config,
        spec=spec,
        data=data,
        images=images,
        labels=data.test_labels[: config.parity_samples].numpy(),
        feed=to_graph_input(images, spec, norm.mean, norm.std),
    )


def _build_candidates(job: _Job, fp32: Path, work: Path) -> dict[str, _Candidate]:
    """The requested mode's variant, or every auto candidate that changed something (fp32 first)."""
    names = auto_candidates() if job.config.quantize == AUTO else [job.config.quantize]
    context = BuildContext(
        config=job.config, input_name=job.spec.name, calibration=functools.cache(lambda: _calibration(job))
    )
    candidates = {}
    for name in names:
        path = work / f"{name}.onnx"
        built = get_mode(name).build(fp32, path, context)
        if job.config.quantize == AUTO and built.unchanged:  # the fp32 graph under another name
            continue
        candidates[name] = _Candidate(path, built)
    return candidates


def _calibration(job: _Job) -> tuple[np.ndarray, dict[str, Any]]:
    config, data = job.config, job.data
    picked = calibration_indices(data.train_labels, config.calibration_samples, config.seed)
    manifest = {
        "samples": len(picked),
        "seed": config.seed,
        "split": "train",
        "dataset": data.name,
        "manifest_sha256": hashlib.sha256(",".join(map(str, picked.tolist())).encode()).hexdigest(),
    }
    return to_graph_input(data.train_images[picked].numpy(), job.spec, *job.norm), manifest


def calibration_indices(labels: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """A seeded, class-stratified sample: equal shares per class, interleaved, ``count`` in all."""
    generator = torch.Generator().manual_seed(seed)
    classes = labels.unique()
    per_class = -(-count // len(classes))
    picks = [(labels == c).nonzero().flatten() for c in classes]
    picks = [m[torch.randperm(len(m), generator=generator)[:per_class]] for m in picks]
    return torch.stack([p[i] for i in range(per_class) for p in picks if i < len(p)])[:count]


def _pick(job: _Job, candidates: dict[str, _Candidate]) -> _Choice:
    if job.config.quantize != AUTO:
        return _Choice(job.config.quantize, candidates[job.config.quantize], None)
    drop = job.config.max_accuracy_drop
    decision = choose_fastest(
        {name: c.path for name, c in candidates.items()},
        job.feed,
        job.labels,
        input_name=job.spec.name,
        max_accuracy_drop=drop,
        iters=job.config.latency_iters,
        gates={name: gates_for(get_mode(name).exact, drop) for name in candidates},
    )
    return _Choice(decision.chosen, candidates[decision.chosen], decision)


def _gate(job: _Job, mode: str, path: Path) -> ParityReport:
    return check_parity(
        job.model,
        path,
        job.images,
        job.labels,
        spec=job.spec,
        mean=job.norm[0],
        std=job.norm[1],
        gates=gates_for(get_mode(mode).exact, job.config.max_accuracy_drop),
    )


def _write(job: _Job, out: Path, fp32: Path, choice: _Choice, parity: ParityReport) -> ExportReport:
    """The chosen variant with its metadata at ``out`` (atomically, after a read-back), and its report card."""
    decision = choice.decision
    settings = {
        "mode": choice.mode,
        **choice.candidate.built.settings,
        **({"auto": decision.to_dict()} if decision else {}),
    }
    meta = ModelMetadata(card=job.checkpoint.card, input=job.spec, quantization=settings, parity=parity.to_dict())
    with atomic_path(out) as final:
        write_metadata(onnx.load(str(choice.candidate.path)), meta, final)
        read_metadata(open_session(final), source=str(out))  # the runtime loads it and reads it back
        measured = measure_report(
            final=final,
            fp32=fp32,
            chosen=choice.candidate.path,
            feed=job.feed,
            spec=job.spec,
            iters=job.config.latency_iters,
            decision=decision,
        )
        report = _report(job, out, choice, settings, parity, measured)
    return report


def _report(
    job: _Job, out: Path, choice: _Choice, settings: dict[str, Any], parity: ParityReport, measured: dict[str, Any]
) -> ExportReport:
    accuracy = {
        "fp32": parity.torch_accuracy,
        "exported": parity.onnx_accuracy,
        "delta_pp": parity.delta_accuracy_pp,
        "samples": parity.samples,
        "fp32_test_accuracy_at_training": job.checkpoint.card.test_accuracy,
    }
    return ExportReport(
        model=str(out),
        arch=job.checkpoint.card.arch,
        requested=job.config.quantize,
        mode=choice.mode,
        input=job.spec,
        opset=job.config.opset,
        settings=settings,
        accuracy=accuracy,
        parity=parity,
        auto=choice.decision,
        warnings=choice.candidate.built.warnings,
        **measured,
    )


def verify_export(
    checkpoint: str | Path,
    model_path: str | Path,
    *,
    parity_samples: int = 10000,
    max_accuracy_drop: float | None = None,
    data_root: str | None = None,
) -> ParityReport:
    """Re-run the parity gate of an exported model against its checkpoint (``edgecnn verify``).
    The gates follow the model's own metadata: its mode's, with the budget it was exported under."""
    saved = load_checkpoint(checkpoint)
    meta = read_metadata(open_session(model_path), source=str(model_path))
    data = load_dataset_for(saved.config, data_root)
    budget = (
        max_accuracy_drop
        if max_accuracy_drop is not None
        else meta.parity.get("gates", {}).get("max_accuracy_drop_pp", ExportConfig.max_accuracy_drop)
    )
    norm = meta.card.normalization
    return check_parity(
        saved.build_model(),
        model_path,
        data.test_images[:parity_samples].numpy(),
        data.test_labels[:parity_samples].numpy(),
        spec=meta.input,
        mean=norm.mean,
        std=norm.std,
        gates=gates_for(get_mode(str(meta.quantization.get("mode"))).exact, budget),
    )
