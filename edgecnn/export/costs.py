"""What one inference of a model costs, read from its graph: parameters and their bytes, multiply-accumulates,
and the peak memory its activations hold at batch 1 (tier 1: the onnx package reads the graph).

Counted on the graph as onnxruntime runs it (its platform-independent optimisations applied: a quantized
graph's QDQ pairs fused into QLinearConv), with the shapes and types a real run makes: the graph is run once
at batch 1 with every intermediate tensor made an output (ONNX's own shape inference does not know
onnxruntime's contrib operators). Peak activation memory is a liveness count in the graph's (topological) node
order: a tensor is held from the node that makes it until its last reader has run, the graph input from the
start and the outputs to the end; the peak is the largest sum of held bytes — what an arena allocator that
frees each tensor after its last use needs, before reuse tricks. Weights are not activations: they are the
parameter bytes. MACs count Conv (float, fused or quantized), Gemm and MatMul from the shapes; element-wise
work is not counted (as torch-side counters such as tools/zoo_package.py's do not).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["GraphCosts", "graph_costs"]

_CONVS = {"Conv", "FusedConv", "ConvInteger", "QLinearConv"}
_MATMULS = {"Gemm", "FusedGemm", "MatMul", "MatMulInteger", "QLinearMatMul", "QGemm"}
# where each operator takes its weights and bias (the rest of its initializers are scales, zero points, shapes)
_WEIGHT_INPUTS = {"QLinearConv": (3, 8), "QGemm": (3, 6), "QLinearMatMul": (3,), "DequantizeLinear": (0,)}


@dataclass(frozen=True)
class GraphCosts:
    """One inference at batch 1: parameters, their bytes, MACs, peak activation bytes, the operators used."""

    parameters: int
    parameter_bytes: int
    macs: int
    peak_activation_bytes: int
    operators: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "operators": list(self.operators)}


def graph_costs(path: str | Path) -> GraphCosts:
    """The costs of the .onnx file at ``path`` at batch 1."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(_as_run(Path(path)))
    graph = model.graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    parameters = _parameters(graph, weights)
    tensors = _run_once(model, set(weights))
    shapes = {name: value.shape for name, value in tensors.items()}
    sizes = {name: int(value.nbytes) for name, value in tensors.items()}
    macs = sum(_macs(node, shapes, weights) for node in graph.node)
    return GraphCosts(
        parameters=parameters,
        parameter_bytes=sum(int(w.nbytes) for w in weights.values()),
        macs=macs,
        peak_activation_bytes=_peak(graph, sizes, set(weights)),
        operators=tuple(sorted({f"{n.domain or 'ai.onnx'}:{n.op_type}" for n in graph.node})),
    )


def _parameters(graph: Any, weights: dict[str, np.ndarray]) -> int:
    """Weights and biases: the initializers at the operators' weight and bias inputs, counted once."""
    held = set()
    for node in graph.node:
        for position in _WEIGHT_INPUTS.get(node.op_type, (1, 2)):
            if position < len(node.input) and node.input[position] in weights:
                held.add(node.input[position])
    return sum(int(weights[name].size) for name in held if weights[name].size > 1 and weights[name].dtype != np.int64)


def _as_run(path: Path) -> Any:
    """The graph as onnxruntime runs it: its platform-independent optimisations applied (QDQ pairs fused into
    QLinearConv, BatchNorm folded), so a quantized graph's weights are not counted as dequantized activations."""
    import tempfile

    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgecnn-costs-") as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return Path(options.optimized_model_filepath).read_bytes()


def _run_once(model: Any, weights: set[str]) -> dict[str, np.ndarray]:
    """Every tensor the graph makes (and its input), from one run at batch 1 on zeros."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    copy = onnx.ModelProto()
    copy.CopyFrom(model)  # the caller's graph keeps its own outputs
    graph = copy.graph
    made = [name for node in graph.node for name in node.output if name]
    known = {value.name for value in graph.output}
    graph.output.extend(helper.ValueInfoProto(name=name) for name in made if name not in known)
    session = ort.InferenceSession(copy.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {}
    for value in session.get_inputs():
        if value.name in weights:
            continue
        shape = [1 if not isinstance(d, int) else d for d in value.shape]
        feeds[value.name] = np.zeros(shape, dtype=_NUMPY[value.type])
    names = [value.name for value in session.get_outputs()]
    return {**feeds, **dict(zip(names, session.run(names, feeds), strict=True))}


_NUMPY = {
    "tensor(float)": np.float32,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(float16)": np.float16,
}


def _peak(graph: Any, sizes: dict[str, int], weights: set[str]) -> int:
    last_use = {}
    for index, node in enumerate(graph.node):
        for name in node.input:
            last_use[name] = index
    for output in graph.output:
        last_use[output.name] = len(graph.node)
    held = {value.name: sizes.get(value.name, 0) for value in graph.input if value.name not in weights}
    peak = sum(held.values())
    for index, node in enumerate(graph.node):
        for name in node.output:
            if name:
                held[name] = sizes.get(name, 0)
        peak = max(peak, sum(held.values()))
        for name in [n for n in held if last_use.get(n, -1) <= index]:
            del held[name]
    return int(peak)


def _macs(node: Any, shapes: dict[str, tuple[int, ...]], weights: dict[str, np.ndarray]) -> int:
    out = shapes.get(node.output[0])
    if out is None:
        return 0
    if node.op_type in _CONVS:
        kernel = weights.get(node.input[3 if node.op_type == "QLinearConv" else 1])  # int8 or float weights
        if kernel is None:
            return 0
        return int(np.prod(out, dtype=np.int64)) * int(np.prod(kernel.shape[1:], dtype=np.int64))
    if node.op_type in _MATMULS:
        first = shapes.get(node.input[0])
        if first is None:
            return 0
        transposed = node.op_type in ("Gemm", "QGemm") and any(a.name == "transA" and a.i for a in node.attribute)
        inner = first[-2] if transposed else first[-1]
        return int(np.prod(out, dtype=np.int64)) * int(inner)
    return 0
