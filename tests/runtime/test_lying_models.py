"""Model files that lie — metadata that contradicts the graph, broken JSON, wrong types, bytes that are
not UTF-8, extra inputs, NaN weights — built here from a real export. Each one is refused at load with a
ModelFileError (or, where only running it can tell, at predict), never a raw exception or a wrong answer."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from conftest import run_cli
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from edgecnn.config import ExportConfig
from edgecnn.errors import EdgeCNNError, ModelFileError
from edgecnn.export.from_checkpoint import export_checkpoint
from edgecnn.runtime import Predictor
from edgecnn.runtime.metadata import PREFIX, decode


@pytest.fixture(scope="module")
def honest(checkpoints, tmp_path_factory):
    out = tmp_path_factory.mktemp("honest") / "m.onnx"
    export_checkpoint(checkpoints("tiny"), out, ExportConfig(parity_samples=300, latency_iters=3))
    return out


def _props(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def _with_props(model: onnx.ModelProto, **changes: str | None) -> onnx.ModelProto:
    props = _props(model)
    for key, value in changes.items():
        if value is None:
            props.pop(PREFIX + key, None)
        else:
            props[PREFIX + key] = value
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def _json_edit(model: onnx.ModelProto, key: str, edit) -> onnx.ModelProto:
    value = json.loads(_props(model)[PREFIX + key])
    return _with_props(model, **{key: json.dumps(edit(value))})


def _graph_edit(model: onnx.ModelProto, edit) -> onnx.ModelProto:
    edit(model.graph)
    return model


def _second_input(graph):
    graph.input.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, ["N", 3]))
    graph.node.append(helper.make_node("Identity", ["extra"], ["extra_out"]))


def _nan_weight(graph):
    init = next(i for i in graph.initializer if len(i.dims) == 4)
    array = numpy_helper.to_array(init).copy()
    array.flat[0] = np.nan
    init.CopyFrom(numpy_helper.from_array(array, init.name))


LIES = {
    "no schema": lambda m: _with_props(m, schema=None),
    "future schema": lambda m: _with_props(m, schema="99"),
    "class names missing": lambda m: _with_props(m, class_names=None),
    "class names not JSON": lambda m: _with_props(m, class_names="[0, 1"),
    "class names not text": lambda m: _with_props(m, class_names=json.dumps(list(range(10)))),
    "fewer class names than logits": lambda m: _json_edit(m, "class_names", lambda v: v[:5]),
    "more class names than logits": lambda m: _json_edit(m, "class_names", lambda v: v + ["x", "y"]),
    "one class": lambda m: _json_edit(m, "class_names", lambda v: v[:1]),
    "empty normalization": lambda m: _with_props(m, normalization=json.dumps({"mean": [], "std": []})),
    "zero std": lambda m: _json_edit(m, "normalization", lambda v: {**v, "std": [0.0]}),
    "NaN mean": lambda m: _with_props(m, normalization='{"mean": [NaN], "std": [0.3]}'),
    "mean per 3 channels": lambda m: _json_edit(m, "normalization", lambda v: {"mean": [0.1] * 3, "std": [0.3] * 3}),
    "normalization as a list": lambda m: _with_props(m, normalization="[0.1, 0.3]"),
    "input as a list": lambda m: _with_props(m, input="[1, 28, 28]"),
    "three channels": lambda m: _json_edit(m, "input", lambda v: {**v, "shape": [3, 28, 28]}),
    "other size": lambda m: _json_edit(m, "input", lambda v: {**v, "shape": [1, 32, 32]}),
    "shape of two": lambda m: _json_edit(m, "input", lambda v: {**v, "shape": [28, 28]}),
    "negative size": lambda m: _json_edit(m, "input", lambda v: {**v, "shape": [1, -28, 28]}),
    "huge size": lambda m: _json_edit(m, "input", lambda v: {**v, "shape": [1, 10**9, 28]}),
    "baked but float graph": lambda m: _json_edit(
        m, "input", lambda v: {**v, "baked": True, "layout": "NHW", "dtype": "uint8"}
    ),
    "layout contradicts": lambda m: _json_edit(m, "input", lambda v: {**v, "layout": "NHWC"}),
    "other input name": lambda m: _json_edit(m, "input", lambda v: {**v, "name": "pixels"}),
    "baked as text": lambda m: _json_edit(m, "input", lambda v: {**v, "baked": "no"}),
    "metrics not numbers": lambda m: _with_props(m, metrics='{"test_accuracy": "high"}'),
    "quantization a list": lambda m: _with_props(m, quantization="[]"),
    "deep JSON": lambda m: _with_props(m, parity="[" * 100000 + "]" * 100000),
    "second graph input": lambda m: _graph_edit(m, _second_input),
}
RUNTIME_LIES = {"NaN weight": lambda m: _graph_edit(m, _nan_weight)}


@pytest.mark.parametrize("lie", sorted(LIES))
def test_a_lying_model_is_refused_at_load(lie, honest, tmp_path):
    path = tmp_path / "lie.onnx"
    onnx.save(LIES[lie](onnx.load(str(honest))), str(path))
    with pytest.raises(ModelFileError):
        Predictor(path)


@pytest.mark.parametrize("lie", sorted(RUNTIME_LIES))
def test_a_model_whose_weights_lie_is_refused_when_it_runs(lie, honest, tmp_path, mnist):
    path = tmp_path / "lie.onnx"
    onnx.save(RUNTIME_LIES[lie](onnx.load(str(honest))), str(path))
    with pytest.raises(ModelFileError, match="non-finite|NaN"):
        Predictor(path).predict(mnist.test_images[:3, 0].numpy())


def test_metadata_bytes_that_are_not_utf8(honest, tmp_path):
    model = _with_props(onnx.load(str(honest)), dataset="QQQQQ")
    raw = model.SerializeToString().replace(b"QQQQQ", b"\xff\xfe\xfd\xfc\xfb")
    path = tmp_path / "bytes.onnx"
    path.write_bytes(raw)
    with pytest.raises(ModelFileError, match="UTF-8"):
        Predictor(path)
    for args in (["info", str(path)], ["bench", str(path), "--iters", "5", "--cold-runs", "0"]):
        proc = run_cli(*args, block_torch=True)
        assert proc.returncode == 1 and proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.parametrize("lie", ["three channels", "fewer class names than logits", "input as a list"])
def test_the_cli_says_one_line_about_a_lying_model(lie, honest, tmp_path, mnist):
    from PIL import Image

    path = tmp_path / "lie.onnx"
    onnx.save(LIES[lie](onnx.load(str(honest))), str(path))
    Image.fromarray(mnist.test_images[0, 0].numpy()).save(tmp_path / "x.png")
    for args in (
        ["predict", str(path), str(tmp_path / "x.png")],
        ["bench", str(path), "--iters", "5", "--cold-runs", "0"],
    ):
        proc = run_cli(*args, block_torch=True)
        assert proc.returncode == 1 and proc.stdout == "", proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@given(
    changes=st.dictionaries(
        st.sampled_from(
            [
                "schema",
                "arch",
                "dataset",
                "class_names",
                "normalization",
                "metrics",
                "lineage",
                "input",
                "quantization",
                "parity",
                "version",
            ]
        ),
        st.one_of(JSON.map(json.dumps), st.text(max_size=20)),
        max_size=4,
    )
)
def test_any_metadata_decodes_or_is_a_model_file_error(changes):
    valid = {
        "schema": "2",
        "version": "0.1.0",
        "arch": "tiny",
        "dataset": "mnist",
        "class_names": json.dumps([str(i) for i in range(10)]),
        "normalization": json.dumps({"mean": [0.1307], "std": [0.3081]}),
        "metrics": "{}",
        "lineage": "{}",
        "input": json.dumps(
            {"name": "input", "layout": "NCHW", "dtype": "float32", "shape": [1, 28, 28], "baked": False}
        ),
        "quantization": '{"mode": "none"}',
        "parity": "{}",
    }
    props = {PREFIX + k: v for k, v in {**valid, **changes}.items()}
    try:
        meta = decode(props, source="m.onnx")
    except ModelFileError:
        return
    except EdgeCNNError as exc:  # pragma: no cover - the assertion below names it
        raise AssertionError(f"decode raised {type(exc).__name__}, not ModelFileError") from exc
    assert len(meta.card.class_names) >= 2 and meta.card.input_shape[0] in (1, 2, 3, 4)
    assert all(s > 0 for s in meta.card.normalization.std)
