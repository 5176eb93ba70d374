"""The report's latency: auto's own figures, fp32's found by name (not by where it sits in auto's table)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgecnn.export.report import measure_report
from edgecnn.runtime.fastest import REFERENCE, AutoRow, decide


def _row(candidate: str, b1: float, b8: float) -> AutoRow:
    mode = candidate.partition("@")[0]
    backend = "openvino" if "@" in candidate else "onnxruntime"
    return AutoRow(candidate, mode, backend, "f32", None, 0.9, 0.0, 1.0, 0.0, {"1": b1, "8": b8}, 100, True)


def _graph(path) -> None:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])
    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["logits"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_fp32_latency_is_the_reference_row_wherever_it_sits(tmp_path):
    rows = [_row("static@openvino", 0.5, 2.0), _row("static", 0.7, 3.0), _row(REFERENCE, 1.0, 4.0)]
    decision = decide(rows, batch_size_hint=8, max_accuracy_drop=0.3)
    assert decision.table[0].candidate != REFERENCE  # the order this test is about
    assert decision.reference.candidate == REFERENCE and decision.chosen == "static@openvino"
    model = tmp_path / "model.onnx"
    _graph(model)
    feed = np.zeros((8, 4), np.float32)
    measured = measure_report(
        final=model, fp32=model, chosen=model, feed=feed, iters=1, batch_sizes=(1, 8), decision=decision
    )
    assert measured["latency_ms_p50"] == {"fp32": {"1": 1.0, "8": 4.0}, "exported": {"1": 0.5, "8": 2.0}}
