"""torch → ONNX: eval mode, a batch axis that really is dynamic, the full checker, edgecnn metadata.

``export_onnx`` works for any ``torch.nn.Module``; ``edgecnn.export.from_checkpoint`` builds on it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import onnx
import torch
from torch import nn

from edgecnn.errors import ExportError, describe
from edgecnn.export.graphs import write_metadata
from edgecnn.runtime.metadata import ModelMetadata

__all__ = ["export_onnx", "BakedPreprocessing"]

EXAMPLE_BATCH = 2  # torch.export specialises a dimension seen as 0 or 1; an example of 2 keeps it dynamic


class BakedPreprocessing(nn.Module):
    """uint8 pixels (N×H×W, or N×H×W×C) → cast, ÷255, normalise, NCHW → the wrapped net."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        self.channels = len(mean)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.to(torch.float32)
        x = x.unsqueeze(1) if self.channels == 1 else x.permute(0, 3, 1, 2)
        return self.model((x / 255.0 - self.mean) / self.std)


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    input_shape: Sequence[int],
    opset: int = 18,
    input_dtype: torch.dtype = torch.float32,
    metadata: ModelMetadata | None = None,
) -> Path:
    """Export ``model`` for inputs of shape (batch, *input_shape); check it; return the path.

    ``input_shape`` excludes the batch axis: (C, H, W) for float nets, (H, W) or (H, W, C) for a
    :class:`BakedPreprocessing` wrapper with ``input_dtype=torch.uint8``.
    """
    path = Path(path)
    was_training = model.training
    model.eval()
    try:
        _run_exporter(model, torch.zeros(EXAMPLE_BATCH, *input_shape, dtype=input_dtype), path, opset)
    finally:
        model.train(was_training)
    proto = onnx.load(str(path))
    _check(proto, path)
    if metadata is not None:
        write_metadata(proto, metadata, path)
    return path


def _run_exporter(model: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    options = {
        "dynamo": True,
        "opset_version": opset,
        "input_names": ["input"],
        "output_names": ["logits"],
        "dynamic_shapes": ({0: batch},),
        "external_data": False,
        "verbose": False,
    }
    try:
        torch.onnx.export(model, (example,), str(path), **options)
    except Exception as exc:  # noqa: BLE001 — the exporter raises many unrelated types; all mean "failed"
        name = type(model).__name__
        raise ExportError(f"torch.onnx.export failed for {name}: {type(exc).__name__}: {describe(exc)}") from exc


def _check(proto: onnx.ModelProto, path: Path) -> None:
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"the exported graph fails onnx.checker: {describe(exc)}") from exc
    dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    if not dim.dim_param:
        raise ExportError(f"the exported graph fixed its batch axis to {dim.dim_value}; it must be dynamic")
