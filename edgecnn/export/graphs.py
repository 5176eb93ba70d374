"""What is in an ONNX file, and its edgecnn metadata: op counts, int8 coverage, metadata writing, and the
onnxruntime#25890 workaround. Tier 1: onnx, no torch."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgecnn.runtime.metadata import ModelMetadata, encode

__all__ = [
    "op_counts",
    "compute_op_counts",
    "quantized_anything",
    "prepare_shallow_convs",
    "strip_value_info",
    "write_metadata",
]

CHANNEL_MULTIPLE = 4  # onnxruntime's fast x86 int8 conv (MLAS ConvSym) takes input channels in fours

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


def prepare_shallow_convs(model: onnx.ModelProto) -> tuple[list[dict[str, Any]], list[str]]:
    """Ready, in place, every Conv whose input channels are not a multiple of 4 (a grayscale stem: 1) for
    static int8: onnxruntime's fast x86 int8 conv (MLAS ConvSym) takes channels in fours, and its fallback
    (im2col + GEMM) made keras_same's one-channel stem 4.5× slower in int8 than in fp32 (issue 12,
    tools/bench_int8.py). A stem followed by Relu → MaxPool stays float, the two swapped (MaxPool → Relu:
    the same function, as Relu is monotonic) so the quantization starts after the pool — left in place,
    onnxruntime's QDQ propagation moves the first QuantizeLinear above the float MaxPool onto its slow
    uint8 pool; any other is padded with zero channels (a Pad, zero weights). Both keep the fp32 function
    exactly. Returns what was done (for the metadata) and the output names of the convs to keep float."""
    weights = {init.name: init for init in model.graph.initializer}
    uses = Counter(name for node in model.graph.node for name in node.input)
    done, keep_float = [], []
    for index in reversed(range(len(model.graph.node))):  # inserting before a node leaves earlier ones in place
        node = model.graph.node[index]
        groups = next((a.i for a in node.attribute if a.name == "group"), 1)
        if node.op_type != "Conv" or groups != 1 or node.input[1] not in weights or uses[node.input[1]] != 1:
            continue
        channels = weights[node.input[1]].dims[1]
        if channels % CHANNEL_MULTIPLE == 0 or weights[node.input[1]].data_type != onnx.TensorProto.FLOAT:
            continue
        if _swap_relu_pool(model, node):
            done.append({"node": node.name, "input_channels": channels, "kept": "float, Relu after MaxPool"})
            keep_float.append(node.output[0])
        else:
            _pad_channels(model, index, node, weights[node.input[1]])
            done.append({"node": node.name, "input_channels": channels, "kept": f"int8, padded to {CHANNEL_MULTIPLE}"})
    return done[::-1], keep_float


def _only_consumer(model: onnx.ModelProto, tensor: str, op_type: str) -> onnx.NodeProto | None:
    consumers = [node for node in model.graph.node if tensor in node.input]
    outputs = {o.name for o in model.graph.output}
    if len(consumers) == 1 and consumers[0].op_type == op_type and tensor not in outputs:
        return consumers[0]
    return None


def _swap_relu_pool(model: onnx.ModelProto, conv: onnx.NodeProto) -> bool:
    """Conv → Relu → MaxPool becomes Conv → MaxPool → Relu, the pool's output name kept at the end."""
    relu = _only_consumer(model, conv.output[0], "Relu")
    pool = relu and _only_consumer(model, relu.output[0], "MaxPool")
    if relu is None or pool is None or len(pool.output) != 1:
        return False
    end, middle = pool.output[0], relu.output[0]
    pool.input[0], pool.output[0] = conv.output[0], middle
    relu.input[0], relu.output[0] = middle, end
    nodes = list(model.graph.node)
    first, second = sorted((nodes.index(relu), nodes.index(pool)))
    swapped_first, swapped_second = onnx.NodeProto(), onnx.NodeProto()
    swapped_first.CopyFrom(pool), swapped_second.CopyFrom(relu)
    model.graph.node[first].CopyFrom(swapped_first)  # the pool now feeds the relu: it must come first
    model.graph.node[second].CopyFrom(swapped_second)
    _forget_shapes(model, middle)  # its shape changed: inferred again
    return True


def _forget_shapes(model: onnx.ModelProto, name: str) -> None:
    kept = [info for info in model.graph.value_info if info.name != name]
    del model.graph.value_info[:]
    model.graph.value_info.extend(kept)


def _pad_channels(model: onnx.ModelProto, index: int, node: onnx.NodeProto, weight_proto: onnx.TensorProto) -> None:
    from onnx import helper, numpy_helper

    weight = numpy_helper.to_array(weight_proto)
    extra = -weight.shape[1] % CHANNEL_MULTIPLE
    widths = [(0, 0), (0, extra)] + [(0, 0)] * (weight.ndim - 2)
    weight_proto.CopyFrom(numpy_helper.from_array(np.pad(weight, widths), weight_proto.name))
    _forget_shapes(model, weight_proto.name)
    pads, name = [0] * (2 * weight.ndim), f"{node.name or node.output[0]}_channel_pad"
    pads[weight.ndim + 1] = extra  # the channel axis, at its end
    model.graph.initializer.append(numpy_helper.from_array(np.asarray(pads, np.int64), name + "_pads"))
    model.graph.node.insert(index, helper.make_node("Pad", [node.input[0], name + "_pads"], [name], name=name))
    node.input[0] = name


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
