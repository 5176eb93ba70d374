"""ONNX → dynamic int8 / static QDQ int8 / fp16, all through onnxruntime's own tools. Tier 1 (+ onnx).

Why the defaults differ from ``quantize_dynamic``'s: onnxruntime's default dynamic recipe turns every
Conv into ConvInteger, which on x86 ran every seed net several times slower than fp32 (BENCHMARKS.md,
"Quantization": the textbook rows, tools/bench_quant.py) and has no CUDA kernel.
Ours quantizes MatMul/Gemm only, and only weights large enough to pay for the per-call activation
quantization (``min_weight_elements``); Conv needs an explicit opt-in, with a warning.

Each quantizer returns :class:`~edgecnn.export.built.Built`: the settings that go into the model's
metadata and the warnings that go into the report card (the library never prints them).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgecnn.errors import ExportError, describe
from edgecnn.export.built import Built
from edgecnn.export.graphs import prepare_shallow_convs, quantized_anything, strip_value_info

__all__ = [
    "DEFAULT_DYNAMIC_OPS",
    "quantize_dynamic_int8",
    "quantize_static_int8",
    "convert_fp16",
    "quiet_quantizer_logs",
]

DEFAULT_DYNAMIC_OPS = ("MatMul", "Gemm")
_FAILURES = (ValueError, RuntimeError, KeyError, onnx.checker.ValidationError, onnx.shape_inference.InferenceError)
_log = logging.getLogger("edgecnn.export")


@contextlib.contextmanager
def quiet_quantizer_logs() -> Iterator[None]:
    """onnxruntime's quantizer logs advice through the root logger (``logging.info(...)``), which would
    reach the user's terminal. For the duration, its records go to the ``edgecnn.export`` logger at DEBUG
    instead; everyone else's root-logger records pass untouched, and the filter is removed afterwards."""

    def reroute(record: logging.LogRecord) -> bool:
        if "onnxruntime" not in record.pathname:
            return True
        _log.debug("onnxruntime: %s", record.getMessage())
        return False

    root = logging.getLogger()
    root.addFilter(reroute)
    try:
        yield
    finally:
        root.removeFilter(reroute)


def _small_weight_nodes(model: onnx.ModelProto, ops: Sequence[str], min_elements: int) -> list[str]:
    sizes = {init.name: int(np.prod(init.dims)) for init in model.graph.initializer}
    small = [
        node.name
        for node in model.graph.node
        if node.op_type in ops
        and node.op_type != "Conv"
        and len(node.input) > 1
        and sizes.get(node.input[1], min_elements) < min_elements
    ]
    # quantize_dynamic rewrites Gemm into MatMul(+Add) named NAME_MatMul before it applies the list
    return small + [name + "_MatMul" for name in small]


def quantize_dynamic_int8(
    src: Path, dst: Path, *, ops: Sequence[str] | None = None, min_weight_elements: int = 65536
) -> Built:
    """Weights int8, activations quantized per call."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    ops = tuple(ops or DEFAULT_DYNAMIC_OPS)
    warned = ()
    if "Conv" in ops:
        warned = (
            "dynamic quantization of Conv makes ConvInteger nodes, which ran the seed nets several times slower "
            "than fp32 on x86 and have no CUDA kernel; prefer --quantize static for Conv",
        )
    with tempfile.TemporaryDirectory(prefix="edgecnn-quant-") as tmp, quiet_quantizer_logs():
        clean = Path(tmp) / "clean.onnx"
        excluded = _small_weight_nodes(strip_value_info(src, clean), ops, min_weight_elements)
        try:
            quantize_dynamic(
                str(clean),
                str(dst),
                op_types_to_quantize=list(ops),
                weight_type=QuantType.QInt8,
                per_channel=False,
                nodes_to_exclude=excluded,
            )
        except _FAILURES as exc:
            raise ExportError(f"dynamic quantization failed: {describe(exc)}") from exc
    settings = {
        "ops": list(ops),
        "weight_type": "int8",
        "per_channel": False,
        "min_weight_elements": min_weight_elements,
        "kept_float": excluded,
    }
    hint = f" (dynamic leaves MatMul/Gemm weights under {min_weight_elements:,} elements in float)"
    return _checked(Built(settings, warned), dst, "dynamic", hint)


def _checked(built: Built, dst: Path, mode: str, hint: str = "") -> Built:
    """A quantizer that found nothing to quantize made the fp32 graph under another name: say so."""
    if quantized_anything(dst):
        return built
    warning = f"{mode}: no node qualified for int8{hint}, so the graph stays fp32"
    return Built(built.settings, (*built.warnings, warning), unchanged=True)


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over an in-memory array, in small batches."""

    def __init__(self, input_name: str, data: np.ndarray, batch: int = 50) -> None:
        self._batches = iter([{input_name: data[i : i + batch]} for i in range(0, len(data), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantize_static_int8(
    src: Path,
    dst: Path,
    calibration: np.ndarray,
    *,
    input_name: str,
    method: str = "minmax",
    ops: Sequence[str] | None = None,
    manifest: dict[str, Any] | None = None,
    weights: str = "int8",
) -> Built:
    """Shallow convs made fast (:func:`prepare_shallow_convs`), quant_pre_process, then QDQ with per-channel
    ``weights`` (int8; int7: reduce_range; uint8) and uint8 activations (U8S8, x86 VNNI's fast path: S8S8 runs as
    U8S8, or several times slower than fp32: BENCHMARKS.md, "int8 on the CPU"), calibrated on ``calibration``."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="edgecnn-quant-") as tmp, quiet_quantizer_logs():
        ready, pre = Path(tmp) / "ready.onnx", Path(tmp) / "pre.onnx"
        model = onnx.load(str(src))
        shallow, keep_float = prepare_shallow_convs(model)
        onnx.save(model, str(ready))
        # The histogram calibrators (entropy, percentile) print() their progress: only a stdout redirect
        # keeps it off a --json stdout. Scoped to them; export never runs inside the server.
        quiet = contextlib.redirect_stdout(io.StringIO()) if method != "minmax" else contextlib.nullcontext()
        try:
            quant_pre_process(str(ready), str(pre))
            with quiet:
                _quantize_qdq(pre, dst, _Calibration(input_name, calibration), (method, weights), ops, keep_float)
        except _FAILURES as exc:
            raise ExportError(f"static quantization failed: {describe(exc)}") from exc
    settings = {
        "format": "QDQ",
        "per_channel": True,
        **_weight_settings(weights),
        "activation_type": "uint8",
        "ops": list(ops) if ops else "all supported",
        "shallow_convs": shallow,
        "calibration": {"method": method, **(manifest or {})},
    }
    return _checked(Built(settings), dst, "static")


def _weight_settings(weights: str) -> dict[str, Any]:
    return {
        "weight_type": "uint8" if weights == "uint8" else "int8",
        "weights": weights,
        "reduce_range": weights == "int7",
    }


def _quantize_qdq(
    src: Path,
    dst: Path,
    reader: _Calibration,
    recipe: tuple[str, str],
    ops: Sequence[str] | None,
    keep_float: Sequence[str],
) -> None:
    """``recipe``: the calibration method and the weights (int8, int7: reduce_range, uint8); ``keep_float``:
    output names of the convs to leave in float (found by output: pre-processing may rename nodes, never a
    graph's tensors)."""
    method, weights = recipe
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    exclude = [n.name for n in onnx.load(str(src)).graph.node if n.op_type == "Conv" and n.output[0] in keep_float]
    if len(exclude) != len(keep_float):
        raise ExportError(f"pre-processing lost the convs to keep in float ({', '.join(keep_float)})")

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    quantize_static(
        str(src),
        str(dst),
        reader,
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QUInt8 if weights == "uint8" else QuantType.QInt8,
        reduce_range=weights == "int7",
        calibrate_method=methods[method],
        op_types_to_quantize=list(ops) if ops else None,
        nodes_to_exclude=exclude,
    )


def convert_fp16(src: Path, dst: Path) -> Built:
    """float16 weights and compute, float32 inputs and outputs (for GPUs; most CPUs emulate it)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return Built({"keep_io_types": True})
