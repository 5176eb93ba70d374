"""A model call that never ends, for the time-limit and drain tests: the zoo's fashion_bn (fp32) with a Loop of
10^12 steps, taken only when an input value passes 1000; any other input answers as fashion_bn does."""

from __future__ import annotations

from pathlib import Path

from conftest import REPO


def spinning_model(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(REPO / "models" / "fashion_bn" / "fashion_bn.fp32.onnx")
    graph = model.graph
    x, logits = graph.input[0].name, graph.output[0].name
    for node in graph.node:  # the net's scores now feed the final Add
        node.output[:] = ["scores" if name == logits else name for name in node.output]

    def scalar(name: str, value: float | int | bool, kind: int = TensorProto.FLOAT) -> onnx.TensorProto:
        return helper.make_tensor(name, kind, [], [value])

    step = helper.make_graph(
        [helper.make_node("Identity", ["go"], ["go_on"]), helper.make_node("Add", ["v", "one"], ["v_next"])],
        "spin",
        [helper.make_tensor_value_info(n, t, []) for n, t in (("i", 7), ("go", 9), ("v", 1))],
        [helper.make_tensor_value_info(n, t, []) for n, t in (("go_on", 9), ("v_next", 1))],
        [scalar("one", 1.0)],
    )
    graph.initializer.extend(
        [
            scalar("threshold", 1000.0),
            scalar("steps", 10**12, TensorProto.INT64),
            scalar("zero", 0.0),
            scalar("true", True, TensorProto.BOOL),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("ReduceMax", [x], ["largest"], keepdims=0),
            helper.make_node("Greater", ["largest", "threshold"], ["spin"]),
            helper.make_node("Cast", ["spin"], ["spin64"], to=TensorProto.INT64),
            helper.make_node("Mul", ["spin64", "steps"], ["trips"]),
            helper.make_node("Loop", ["trips", "true", "zero"], ["spun"], body=step),
            helper.make_node("Mul", ["spun", "zero"], ["nothing"]),
            helper.make_node("Add", ["scores", "nothing"], [logits]),
        ]
    )
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path
