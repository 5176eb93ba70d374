"""ONNX → dynamic int8 / static QDQ int8 / fp16, all through onnxruntime's own tools. Tier 1 (+ onnx).

Why the defaults differ from ``quantize_dynamic``'s: onnxruntime's default dynamic recipe turns every
Conv into ConvInteger, which on x86 ran the seed nets 4–12× slower than fp32 and has no CUDA kernel.
Ours quantizes MatMul/Gemm only, and only weights large enough to pay for the per-call activation
quantization (``min_weight_elements``); Conv needs an explicit opt-in, with a warning.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgecnn.errors import ExportError

__all__ = ["DEFAULT_DYNAMIC_OPS", "QuantizationWarning", "op_counts", "compute_op_counts",
           "quantize_dynamic_int8", "quantize_static_int8", "convert_fp16", "choose_fastest"]

DEFAULT_DYNAMIC_OPS = ("MatMul", "Gemm")
QUANTIZED_MIN_AGREEMENT = 0.99  # top-1 agreement an int8/fp16 graph must keep with its float original
FC = "MatMul/Gemm"  # the quantizer rewrites Gemm into MatMul, so both are counted as one family
_FAMILY = {"Conv": "Conv", "ConvInteger": "Conv", "QLinearConv": "Conv", "MatMul": FC, "Gemm": FC,
           "MatMulInteger": FC, "QLinearMatMul": FC, "DynamicQuantizeMatMul": FC, "MatMulIntegerToFloat": FC,
           "QGemm": FC}


class QuantizationWarning(UserWarning):
    """A quantization setting that is allowed but likely to cost speed or accuracy."""


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    return dict(sorted(Counter(node.op_type for node in model.graph.node).items()))


def compute_op_counts(model: onnx.ModelProto) -> dict[str, dict[str, int]]:
    """Conv and MatMul/Gemm nodes, and how many of them run on int8: integer kernels (dynamic) or
    float ops whose weight arrives through DequantizeLinear (QDQ)."""
    dequantized = {out for node in model.graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    counts: dict[str, dict[str, int]] = {}
    for node in model.graph.node:
        family = _FAMILY.get(node.op_type)
        if family is None:
            continue
        entry = counts.setdefault(family, {"nodes": 0, "quantized": 0})
        entry["nodes"] += 1
        if node.op_type not in ("Conv", "MatMul", "Gemm") or (len(node.input) > 1 and node.input[1] in dequantized):
            entry["quantized"] += 1
    return dict(sorted(counts.items()))


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="edgecnn-quant-") as tmp:
        yield Path(tmp)


def _without_value_info(src: Path, dst: Path) -> onnx.ModelProto:
    """onnxruntime#25890: torch's exporter annotates every tensor's shape; when quantize_dynamic turns
    Gemm(transB=1) into MatMul it transposes the weight but not its annotation, and shape inference
    then fails. The annotations are optional, so drop them and let inference redo them."""
    model = onnx.load(str(src))
    del model.graph.value_info[:]
    onnx.save(model, str(dst))
    return model


def _small_weight_nodes(model: onnx.ModelProto, ops: Sequence[str], min_elements: int) -> list[str]:
    sizes = {init.name: int(np.prod(init.dims)) for init in model.graph.initializer}
    small = [node.name for node in model.graph.node
             if node.op_type in ops and node.op_type != "Conv" and len(node.input) > 1
             and sizes.get(node.input[1], min_elements) < min_elements]
    # quantize_dynamic rewrites Gemm into MatMul(+Add) named NAME_MatMul before it applies the list
    return small + [name + "_MatMul" for name in small]


def quantize_dynamic_int8(src: Path, dst: Path, *, ops: Sequence[str] | None = None,
                          min_weight_elements: int = 65536) -> dict[str, Any]:
    """Weights int8, activations quantized per call; returns the settings for the metadata."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    ops = tuple(ops or DEFAULT_DYNAMIC_OPS)
    if "Conv" in ops:
        warnings.warn("dynamic quantization of Conv makes ConvInteger nodes, which ran the seed nets 4–12× "
                      "slower than fp32 on x86 and have no CUDA kernel; prefer --quantize static for Conv",
                      QuantizationWarning, stacklevel=2)
    with _workdir() as tmp:
        model = _without_value_info(src, tmp / "clean.onnx")
        excluded = _small_weight_nodes(model, ops, min_weight_elements)
        try:
            quantize_dynamic(str(tmp / "clean.onnx"), str(dst), op_types_to_quantize=list(ops),
                             weight_type=QuantType.QInt8, per_channel=False, nodes_to_exclude=excluded)
        except (ValueError, RuntimeError, KeyError, onnx.checker.ValidationError,
                onnx.shape_inference.InferenceError) as exc:
            raise ExportError(f"dynamic quantization failed: {exc}") from None
    return {"mode": "dynamic", "ops": list(ops), "weight_type": "int8", "per_channel": False,
            "min_weight_elements": min_weight_elements, "kept_float": excluded}


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over an in-memory array, in small batches."""

    def __init__(self, input_name: str, data: np.ndarray, batch: int = 50) -> None:
        self._batches = iter([{input_name: data[i:i + batch]} for i in range(0, len(data), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantize_static_int8(src: Path, dst: Path, calibration: np.ndarray, *, input_name: str,
                         method: str = "minmax", ops: Sequence[str] | None = None,
                         manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """quant_pre_process, then QDQ with per-channel int8 weights and uint8 activations (U8S8, the
    fast path of x86 VNNI and onnxruntime's CPU kernels), calibrated on ``calibration``."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    with _workdir() as tmp:
        try:
            quant_pre_process(str(src), str(tmp / "pre.onnx"))
            with contextlib.redirect_stdout(io.StringIO()):  # the calibrators print() their progress
                quantize_static(str(tmp / "pre.onnx"), str(dst), _Calibration(input_name, calibration),
                                quant_format=QuantFormat.QDQ, per_channel=True,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibrate_method=methods[method], op_types_to_quantize=list(ops) if ops else None)
        except (ValueError, RuntimeError, KeyError, onnx.checker.ValidationError,
                onnx.shape_inference.InferenceError) as exc:
            raise ExportError(f"static quantization failed: {exc}") from None
    return {"mode": "static", "format": "QDQ", "per_channel": True, "weight_type": "int8",
            "activation_type": "uint8", "ops": list(ops) if ops else "all supported",
            "calibration": {"method": method, **(manifest or {})}}


def convert_fp16(src: Path, dst: Path) -> dict[str, Any]:
    """float16 weights and compute, float32 inputs and outputs (for GPUs; most CPUs emulate it)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return {"mode": "fp16", "keep_io_types": True}


TIE_TOLERANCE = 0.03  # candidates within 3 % of the fastest count as tied: the smaller file wins


def choose_fastest(paths: dict[str, Path], feed: np.ndarray, labels: np.ndarray, *, input_name: str,
                   max_accuracy_drop: float, iters: int,
                   min_agreement: float = QUANTIZED_MIN_AGREEMENT) -> dict[str, Any]:
    """``auto``: measure every candidate on this machine (accuracy on ``feed``; batch-1 and batch-32
    latency, interleaved) and keep the fastest whose accuracy drop vs ``none`` is within budget."""
    from edgecnn.bench import compare_latency
    from edgecnn.runtime import open_session

    predictions = {}
    for name, path in paths.items():
        session = open_session(path)
        predictions[name] = np.concatenate([session.run(None, {input_name: feed[i:i + 256]})[0]
                                            for i in range(0, len(feed), 256)]).argmax(1)
    accuracy = {name: float((p == labels).mean()) for name, p in predictions.items()}
    agreement = {name: float((p == predictions["none"]).mean()) for name, p in predictions.items()}
    latency = compare_latency(paths, feed, input_name=input_name, iters=iters)
    table = []
    for name, path in paths.items():  # "none" (fp32) is always among them
        drop = (accuracy["none"] - accuracy[name]) * 100
        # one figure per candidate: the geometric mean of its batch-1 and batch-32 time relative to fp32
        relative = float(np.sqrt(np.prod([latency[name][b] / latency["none"][b] for b in ("1", "32")])))
        table.append({"candidate": name, "accuracy": accuracy[name], "drop_pp": round(drop, 4),
                      "top1_agreement": agreement[name], "latency_ms": latency[name],
                      "relative_time": round(relative, 4), "size_bytes": Path(path).stat().st_size,
                      # the same gates the parity check will apply to the winner
                      "eligible": drop <= max_accuracy_drop and agreement[name] >= min_agreement})
    eligible = [row for row in table if row["eligible"]]  # "none" always is: no drop, full agreement
    best = min(row["relative_time"] for row in eligible)
    tied = [row for row in eligible if row["relative_time"] <= best * (1 + TIE_TOLERANCE)]
    chosen = min(tied, key=lambda row: row["size_bytes"])["candidate"]
    return {"chosen": chosen, "table": table, "max_accuracy_drop_pp": max_accuracy_drop,
            "rule": f"fastest (geometric mean of batch-1 and batch-32 p50 vs fp32) within the accuracy budget; "
                    f"within {TIE_TOLERANCE:.0%} of the fastest counts as a tie, won by the smaller file"}
