"""`edgecnn bundle --target mobile` on real zoo models: the .ort file onnxruntime loads answers as the .onnx
does on real test images, the reduced build's operators and the preprocessing contract are the model's, and
the costs are the graph's (MACs equal to the torch-side count of the zoo's table)."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from conftest import run_cli

from edgecnn.data.builtin import read_builtin
from edgecnn.export.costs import graph_costs
from edgecnn.runtime import Predictor
from edgecnn.runtime.zoo import resolve_zoo


@pytest.mark.parametrize(
    ("net", "variant", "macs", "parameters"),
    [("keras_same", "int8", 5_846_144, 257_162), ("fashion_bn", "fp32", 2_838_080, 28_938)],
)
def test_the_ort_file_answers_as_the_onnx_file_on_real_test_images(tmp_path, data_root, net, variant, macs, parameters):
    out = tmp_path / "bundle"
    result = run_cli("bundle", f"zoo:{net}:{variant}", "--target", "mobile", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    name = f"{net}.{variant}"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["bundle.json", "preprocessing.json", f"{name}.ort", f"{name}.required_operators.config"]
    )
    assert json.loads((out / "bundle.json").read_text()) == report and report["parity"]["passed"]

    predictor = Predictor(resolve_zoo(f"zoo:{net}:{variant}"), backend="onnxruntime")
    images = read_builtin("fashion-mnist", "test", data_root).images[:500, 0]
    x = predictor.prepare(images, fit="stretch", invert=False)
    session = ort.InferenceSession(str(out / f"{name}.ort"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {session.get_inputs()[0].name: x})[0]
    expected = predictor.logits(x)
    assert np.mean(logits.argmax(1) == expected.argmax(1)) == 1.0
    np.testing.assert_allclose(logits, expected, atol=1e-4 if variant == "fp32" else 0.05, rtol=0)

    config = (out / f"{name}.required_operators.config").read_text()
    assert ("QLinearConv" in config) == (variant == "int8") and "ai.onnx" in config
    contract = json.loads((out / "preprocessing.json").read_text())
    card = predictor.metadata.card
    assert contract["input"]["shape"] == list(card.input_shape) and contract["classes"] == list(card.class_names)
    assert contract["normalization"] == card.normalization.to_dict() and contract["framing"]["default"] == "object"
    costs = report["costs"]
    assert costs["macs"] == macs and costs["parameters"] == parameters
    assert x[:1].nbytes < costs["peak_activation_bytes"] < 4 << 20
    assert report["bytes"]["ort"] == (out / f"{name}.ort").stat().st_size


def test_peak_activation_memory_is_the_largest_set_of_tensors_alive_at_once(tmp_path):
    """x (16 B) → Relu → a (16 B) → Concat(a, a) → b (32 B) → Relu → c (32 B): x is freed after the first Relu,
    a after the Concat, so the peak is b + c = 64 bytes, not the 96 of all four together."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Concat", ["a", "a"], ["b"], axis=1),
        helper.make_node("Relu", ["b"], ["c"]),
    ]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 8])],
    )
    path = tmp_path / "chain.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    costs = graph_costs(path)
    assert (costs.peak_activation_bytes, costs.parameters, costs.macs) == (64, 0, 0)
    assert costs.operators == ("ai.onnx:Concat", "ai.onnx:Relu")


def test_parameters_and_macs_match_the_torch_side_count_of_the_zoo():
    costs = graph_costs(resolve_zoo("zoo:keras_same:fp32"))  # models/README.md: 257,162 and 5,846,144 (torch)
    assert (costs.parameters, costs.macs) == (257_162, 5_846_144)
    assert costs.parameter_bytes == 4 * 257_162 + 16  # the float weights, and the Reshape's int64 shape


def test_a_file_where_the_bundle_folder_goes_is_refused(tmp_path):
    (tmp_path / "taken").write_text("x")
    result = run_cli("bundle", "zoo:fashion_bn", "--target", "mobile", "--out", str(tmp_path / "taken"))
    assert result.returncode == 2 and "taken" in result.stderr and "is a file" in result.stderr  # usage: exit 2
