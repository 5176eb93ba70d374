"""Static int8's treatment of shallow convs (input channels not a multiple of 4: the grayscale stem), on
the zoo's real fp32 files: the fp32 function is kept exactly, and onnxruntime runs the quantized graph
the way issue 12 measured fast (structure, not timings: those live in tools/bench_int8.py)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgecnn.export.graphs import prepare_shallow_convs
from edgecnn.export.quantize import quantize_static_int8
from edgecnn.runtime import Predictor
from edgecnn.runtime.zoo import resolve_zoo


@pytest.fixture(scope="module")
def images(fashion):
    return fashion.normalize(fashion.test_images[:300]).numpy()


def _logits(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize(
    ("name", "kept"), [("keras_same", "float, Relu after MaxPool"), ("keras_conv2", "int8, padded to 4")]
)
def test_the_prepared_fp32_graph_computes_the_same_function(name, kept, images, tmp_path):
    src = resolve_zoo(f"zoo:{name}:fp32")
    model = onnx.load(str(src))
    done, keep_float = prepare_shallow_convs(model)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(tmp_path / "ready.onnx"))
    assert [d["kept"] for d in done] == [kept] and done[0]["input_channels"] == 1
    assert len(keep_float) == (kept.startswith("float"))
    np.testing.assert_allclose(_logits(tmp_path / "ready.onnx", images), _logits(src, images), rtol=0, atol=1e-5)


def _optimized_ops(path, tmp_path):
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return [node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node]


def test_a_float_stem_is_pooled_in_float_before_the_first_quantize(fashion, tmp_path):
    """Left as exported, onnxruntime's QDQ propagation moves the first QuantizeLinear above the float MaxPool
    onto its slow uint8 pool; swapped, the stem and its pool run in fp32 and quantization starts after."""
    src, dst = resolve_zoo("zoo:keras_same:fp32"), tmp_path / "static.onnx"
    calibration = fashion.normalize(fashion.train_images[:200]).numpy()
    built = quantize_static_int8(src, dst, calibration, input_name="input")
    assert [d["kept"] for d in built.settings["shallow_convs"]] == ["float, Relu after MaxPool"]
    ops = _optimized_ops(dst, tmp_path)
    first_quantize = ops.index("QuantizeLinear")
    assert "MaxPool" in ops[:first_quantize] and "QLinearConv" not in ops[:first_quantize]
    assert ops.count("QLinearConv") == 2  # the two deeper convs run on int8
    x = fashion.normalize(fashion.test_images[:500]).numpy()
    agreement = np.mean(_logits(dst, x).argmax(1) == Predictor(src).logits(x).argmax(1))
    assert agreement >= 0.99
