"""The job behind ``edgecnn export``: checkpoint → fp32 graph → build candidates → pick → gate → write.

The model reaches ``out`` through an atomic rename only once every check has passed, so a failed gate, an
error or Ctrl-C leaves nothing at ``out`` (an older file there stays as it was); ``MODEL.report.json``
follows it and records the model's SHA-256, so a card an earlier export left (a kill between the two
writes) shows as describing another file. Work happens in ``edgecnn-export-PID-*`` in the temp folder;
a SIGKILLed run's folder is removed by the next export or quantize.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import torch

from edgecnn.card import ModelCard
from edgecnn.config import ExportConfig
from edgecnn.errors import ModelFileError
from edgecnn.export.gates import ParityReport, gates_for
from edgecnn.export.modes import get_mode
from edgecnn.export.parity import check_parity, measure_parity, torch_logits
from edgecnn.export.pipeline import Inputs, build_candidates, calibration_indices, gating_output, pick, write
from edgecnn.export.report import ExportReport
from edgecnn.export.to_onnx import BakedPreprocessing, export_onnx
from edgecnn.files import check_writable, report_path, work_dir, write_json
from edgecnn.runtime.metadata import InputSpec, read_metadata
from edgecnn.runtime.preprocess import normalize
from edgecnn.runtime.session import open_session
from edgecnn.training.checkpoint import Checkpoint, load_checkpoint
from edgecnn.training.data import load_dataset_for

__all__ = ["export_checkpoint", "verify_export", "calibration_indices"]


def export_checkpoint(checkpoint: str | Path, out: str | Path, config: ExportConfig) -> ExportReport:
    """Export, quantize, verify; write ``out`` and its report card; return the report card."""
    out = check_writable(out, what="out")
    check_writable(report_path(out), what="report")
    saved = load_checkpoint(checkpoint)
    model = saved.build_model()
    inputs = _inputs(saved, config)
    with work_dir("export") as work:
        norm = saved.card.normalization
        graph = BakedPreprocessing(model, norm.mean, norm.std) if inputs.spec.baked else model
        fp32 = export_onnx(
            graph,
            work / "fp32.onnx",
            input_shape=inputs.spec.graph_shape,
            opset=config.opset,
            input_dtype=torch.uint8 if inputs.spec.baked else torch.float32,
        )
        judge = _judge(model, inputs)
        candidates = build_candidates(inputs, fp32, work, judge=judge)
        choice = pick(inputs, candidates)
        with gating_output(out, choice):
            parity = judge(choice.candidate.path, choice.mode, check=True)
        report = write(inputs, out, fp32, choice, parity, opset=config.opset)
    write_json(report_path(out), report.to_dict())  # after the model: a crash between leaves a verified model
    return report


def _judge(model: torch.nn.Module, inputs: Inputs) -> Callable[..., ParityReport]:
    """A built file against torch on the test images under its mode's gates: measured (for the builders
    that choose by it), or checked (``check=True``: the final gate, a failure raises). Torch's logits are
    computed once for all of them."""
    norm = inputs.card.normalization
    reference = functools.cache(lambda: torch_logits(model, normalize(inputs.images, norm.mean, norm.std)))

    def judge(path: Path, mode: str, *, check: bool = False) -> ParityReport:
        parity = check_parity if check else measure_parity
        return parity(
            model,
            path,
            inputs.images,
            inputs.labels,
            spec=inputs.spec,
            mean=norm.mean,
            std=norm.std,
            gates=gates_for(get_mode(mode).exact, inputs.config.max_accuracy_drop),
            reference=reference(),
        )

    return judge


def _inputs(saved: Checkpoint, config: ExportConfig) -> Inputs:
    data = load_dataset_for(saved.config, config.data_root)
    return Inputs(
        card=saved.card,
        spec=InputSpec(shape=saved.card.input_shape, baked=config.bake_preprocessing),
        config=config,
        requested=config.quantize,
        images=data.test_images[: config.parity_samples].numpy(),
        labels=data.test_labels[: config.parity_samples].numpy(),
        train_images=data.train_images.numpy(),
        train_labels=data.train_labels.numpy(),
        dataset=data.name,
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
    _check_same_model(saved.card, meta.card, checkpoint, model_path)
    data = load_dataset_for(saved.config, data_root)
    stored = meta.parity.get("gates", {}).get("max_accuracy_drop_pp", ExportConfig.max_accuracy_drop)
    budget = max_accuracy_drop if max_accuracy_drop is not None else stored
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


def _check_same_model(saved: ModelCard, exported: ModelCard, checkpoint: str | Path, model_path: str | Path) -> None:
    """verify compares a model with ITS checkpoint: a mismatched pair is named, not run into a raw error."""
    fields = ("arch", "class_names", "input_shape", "normalization")
    differ = [f for f in fields if getattr(saved, f) != getattr(exported, f)]
    if differ:
        raise ModelFileError(
            f"{model_path} was not exported from {checkpoint}: their {', '.join(differ)} differ "
            f"({saved.arch} {'×'.join(map(str, saved.input_shape))} vs {exported.arch} "
            f"{'×'.join(map(str, exported.input_shape))})",
            path=model_path,
        )
