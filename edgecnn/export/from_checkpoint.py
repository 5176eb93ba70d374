"""``edgecnn export`` and ``edgecnn verify``: a training checkpoint → an fp32 ONNX graph exported from torch →
the export job (variants.py), judged against the torch model on the checkpoint's own test images.

Only the images the job uses are read: the first ``parity_samples`` of the test split and the calibration
sample of the training split (edgecnn.data.labelled), never a whole image folder. Work happens in
``edgecnn-export-PID-*`` in the temp folder; a SIGKILLed run's folder is removed by the next export or quantize.
Tier 2 (torch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgecnn.card import ModelCard
from edgecnn.config import ExportConfig
from edgecnn.data.labelled import Labelled, open_labelled
from edgecnn.errors import ModelFileError
from edgecnn.export.gates import ParityReport
from edgecnn.export.judge import Judge, Reference
from edgecnn.export.modes import check_requested, get_mode
from edgecnn.export.report import ExportReport
from edgecnn.export.to_onnx import BakedPreprocessing, export_onnx
from edgecnn.export.variants import Job, export_variants
from edgecnn.files import check_writable, report_path, work_dir
from edgecnn.runtime.metadata import InputSpec, read_metadata
from edgecnn.runtime.preprocess import normalize
from edgecnn.runtime.session import open_session
from edgecnn.training.checkpoint import Checkpoint, load_checkpoint

__all__ = ["export_checkpoint", "verify_export", "torch_logits"]


def export_checkpoint(checkpoint: str | Path, out: str | Path, config: ExportConfig) -> ExportReport:
    """Export, quantize, verify; write ``out`` and its report card; return the report card."""
    out = check_writable(out, what="out")
    check_writable(report_path(out), what="report")
    check_requested(config.quantize)  # an unknown mode is refused before the checkpoint is read
    saved = load_checkpoint(checkpoint)
    model = saved.build_model()
    data = _labelled(saved, config.data_root)
    spec = InputSpec(shape=saved.card.input_shape, baked=config.bake_preprocessing)
    reference = torch_reference(model, data, saved.card, spec, config.parity_samples)
    job = Job(
        card=saved.card,
        settings=config,
        requested=config.quantize,
        judge=Judge(reference, config.max_accuracy_drop),
        train=data.train,
        dataset=data.name,
        opset=config.opset,
    )
    with work_dir("export") as work:
        norm = saved.card.normalization
        graph = BakedPreprocessing(model, norm.mean, norm.std) if spec.baked else model
        fp32 = export_onnx(
            graph,
            work / "fp32.onnx",
            input_shape=spec.graph_shape,
            opset=config.opset,
            input_dtype=torch.uint8 if spec.baked else torch.float32,
        )
        return export_variants(job, fp32, out, work)


def verify_export(
    checkpoint: str | Path,
    model_path: str | Path,
    *,
    parity_samples: int = ExportConfig.parity_samples,
    max_accuracy_drop: float | None = None,
    data_root: str | None = None,
) -> ParityReport:
    """Re-run the parity gate of an exported model against its checkpoint (``edgecnn verify``).
    The gates follow the model's own metadata: its mode's, with the budget it was exported under."""
    saved = load_checkpoint(checkpoint)
    meta = read_metadata(open_session(model_path), source=str(model_path))
    _check_same_model(saved.card, meta.card, checkpoint, model_path)
    stored = meta.parity.get("gates", {}).get("max_accuracy_drop_pp", ExportConfig.max_accuracy_drop)
    budget = max_accuracy_drop if max_accuracy_drop is not None else stored
    data = _labelled(saved, data_root)
    reference = torch_reference(saved.build_model(), data, saved.card, meta.input, parity_samples)
    return Judge(reference, budget).check(model_path, exact=get_mode(str(meta.quantization.get("mode"))).exact)


def _labelled(saved: Checkpoint, data_root: str | None) -> Labelled:
    """The checkpoint's dataset, split as its training split it (a folder: the same seeded share held out), its
    classes checked against the model's."""
    config = saved.config
    return open_labelled(
        config.dataset,
        shape=saved.card.input_shape,
        classes=saved.card.class_names,
        data_root=data_root or config.data_root,
        test_fraction=config.test_fraction,
        seed=config.seed,
    )


def torch_reference(
    model: torch.nn.Module, data: Labelled, card: ModelCard, spec: InputSpec, samples: int
) -> Reference:
    """The torch model as the reference: its logits on the first ``samples`` test images, once."""
    images, labels = data.parity_images(samples)
    norm = card.normalization
    return Reference("torch", images, labels, spec, norm, torch_logits(model, normalize(images, norm.mean, norm.std)))


def torch_logits(model: torch.nn.Module, inputs: np.ndarray, batch: int = 500) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return np.concatenate(
            [model(torch.from_numpy(inputs[i : i + batch])).numpy() for i in range(0, len(inputs), batch)]
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
