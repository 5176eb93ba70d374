"""What is in an ONNX file, and its edgecnn metadata: op counts, int8 coverage, metadata writing, and the
onnxruntime#25890 workaround. Tier 1: onnx, no torch."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import onnx

from edgecnn.runtime.metadata import ModelMetadata, encode

__all__ = ["op_counts", "compute_op_counts", "quantized_anything", "strip_value_info", "write_metadata"]

FC = "MatMul/Gemm"  # the quantizer rewrites Gemm into MatMul, so both are counted as one family
_FAMILY = {
    "Conv": "Conv",
    "ConvInteger": "Conv",
    "QLinearConv": "Conv",
    "MatMul": FC,
    "Gemm": FC,
    "MatMulInteger": FC,
    "QLinearMatMul": FC,
    "DynamicQuantizeMatMul": FC,
    "MatMulIntegerToFloat": FC,
    "QGemm": FC,
}


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


def quantized_anything(path: Path) -> bool:
    """Whether any Conv or MatMul/Gemm of the file runs on int8."""
    return any(entry["quantized"] for entry in compute_op_counts(onnx.load(str(path))).values())


def strip_value_info(src: Path, dst: Path) -> onnx.ModelProto:
    """onnxruntime#25890: torch's exporter annotates every tensor's shape; when quantize_dynamic turns
    Gemm(transB=1) into MatMul it transposes the weight but not its annotation, and shape inference
    then fails. The annotations are optional, so drop them and let inference redo them."""
    model = onnx.load(str(src))
    del model.graph.value_info[:]
    onnx.save(model, str(dst))
    return model


def write_metadata(proto: onnx.ModelProto, metadata: ModelMetadata, path: str | os.PathLike[str]) -> None:
    """Replace the model's edgecnn metadata_props and save it to ``path``."""
    props = encode(metadata)
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key not in props]
    del proto.metadata_props[:]
    for key, value in [*kept, *props.items()]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
