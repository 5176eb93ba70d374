"""read_graph_info against onnx.load of the same file, and against bytes that are not a model at all."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from conftest import REPO, plain_torch_export
from onnx import TensorProto, helper, numpy_helper

from edgecnn.errors import ModelFileError
from edgecnn.runtime.graphinfo import GraphInfo, TensorInfo, read_graph_info

METADATA = {"edgecnn.arch": "tiny", "note": "ünïcode ✓", "empty": ""}


def _tiny_model() -> onnx.ModelProto:
    """Conv → Relu → Flatten → Gemm on a symbolic batch, a uint8 side input through a com.microsoft op,
    and the conv weight listed as a graph input too, as old exporters did."""
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "conv.w"),
        numpy_helper.from_array(rng.standard_normal((10, 144)).astype(np.float32), "fc.w"),
        numpy_helper.from_array(np.zeros(10, np.float32), "fc.b"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "conv.w"], ["c"]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["logits"], transB=1),
        helper.make_node("Cast", ["pixels"], ["p"], to=TensorProto.FLOAT),
        helper.make_node("Gelu", ["p"], ["g"], domain="com.microsoft"),
        helper.make_node("Relu", ["g"], ["aux"]),
    ]
    inputs = [
        helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 8, 8]),
        helper.make_tensor_value_info("pixels", TensorProto.UINT8, ["batch", 8, 8]),
        helper.make_tensor_value_info("conv.w", TensorProto.FLOAT, [4, 1, 3, 3]),
    ]
    outputs = [
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10]),
        helper.make_tensor_value_info("aux", TensorProto.FLOAT, [None, 8, 8]),  # an unnamed unknown dim
    ]
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, initializer=weights)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="edgecnn-test", producer_version="1.2")
    helper.set_model_props(model, METADATA)
    return model


def _expected(path: Path) -> dict[str, Any]:
    """What the file holds, as the onnx package reads it: the reference read_graph_info must match."""
    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    initialized = {t.name for t in graph.initializer} | {s.values.name for s in graph.sparse_initializer}

    def info(value: onnx.ValueInfoProto) -> dict[str, Any]:
        tensor = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else d.dim_param or None for d in tensor.shape.dim]
        return {"name": value.name, "dtype": TensorProto.DataType.Name(tensor.elem_type).lower(), "shape": shape}

    ops = Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}" for n in graph.node)
    return {
        "ir_version": model.ir_version,
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "opsets": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "inputs": [info(v) for v in graph.input if v.name not in initialized],
        "outputs": [info(v) for v in graph.output],
        "op_counts": dict(sorted(ops.items())),
        "metadata": {p.key: p.value for p in model.metadata_props},
    }


@pytest.fixture
def tiny_path(tmp_path) -> Path:
    path = tmp_path / "tiny.onnx"
    onnx.save_model(_tiny_model(), str(path))
    return path


def test_matches_onnx_field_by_field(tiny_path):
    info = read_graph_info(tiny_path)
    assert info.to_dict() == _expected(tiny_path)
    assert info.inputs == (
        TensorInfo("image", "float", ("batch", 1, 8, 8)),
        TensorInfo("pixels", "uint8", ("batch", 8, 8)),
    )  # conv.w is an initializer, not something to feed
    assert info.outputs[1].shape == (None, 8, 8)
    assert info.opsets == {"ai.onnx": 17, "com.microsoft": 1}
    assert info.op_counts == {"Cast": 1, "Conv": 1, "Flatten": 1, "Gemm": 1, "Relu": 2, "com.microsoft.Gelu": 1}
    assert list(info.op_counts) == sorted(info.op_counts)
    assert info.metadata == METADATA and info.producer == "edgecnn-test 1.2"
    assert info.ir_version == onnx.load(str(tiny_path)).ir_version > 0
    assert json.loads(json.dumps(info.to_dict())) == info.to_dict()  # plain JSON for `edgecnn info --json`
    assert read_graph_info(str(tiny_path)) == info
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.producer = "x"  # type: ignore[misc]


def test_torch_dynamo_export(tmp_path):
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 26 * 26, 10)
    ).eval()
    path = tmp_path / "torch.onnx"
    plain_torch_export(net, path, external_data=False)
    info = read_graph_info(path)
    assert info.to_dict() == _expected(path)
    assert info.inputs == (TensorInfo("input", "float", ("batch", 1, 28, 28)),)
    assert info.outputs == (TensorInfo("logits", "float", ("batch", 10)),)
    assert info.opsets["ai.onnx"] == 18 and info.producer.startswith("pytorch ")
    assert info.op_counts["Conv"] == 1 and info.op_counts["Relu"] == 1


def test_external_data_is_never_needed(tmp_path):
    path = tmp_path / "external.onnx"
    onnx.save_model(
        _tiny_model(),
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    assert (tmp_path / "weights.bin").stat().st_size > 0
    info = read_graph_info(path)
    assert info.to_dict() == _expected(path)
    assert [t.name for t in info.inputs] == ["image", "pixels"]
    (tmp_path / "weights.bin").unlink()  # the weights are never read, so they need not even be there
    assert read_graph_info(path) == info


def test_types_that_are_not_plain_tensors(tmp_path):
    outputs = [
        helper.make_tensor_value_info("unranked", TensorProto.FLOAT16, None),
        helper.make_tensor_value_info("scalar", TensorProto.BFLOAT16, []),
        helper.make_tensor_sequence_value_info("seq", TensorProto.FLOAT, None),
        helper.make_sparse_tensor_value_info("sparse", TensorProto.INT64, [3, "n"]),
    ]
    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(np.ones(1, np.float32), "s"), numpy_helper.from_array(np.zeros(1, np.int64)), [4]
    )
    inputs = [helper.make_tensor_value_info("s", TensorProto.FLOAT, [4])]
    graph = helper.make_graph([], "g", inputs, outputs, sparse_initializer=[sparse])
    path = tmp_path / "types.onnx"
    onnx.save_model(helper.make_model(graph, producer_name="only-name"), str(path))
    info = read_graph_info(path)
    assert info.inputs == () and info.op_counts == {} and info.producer == "only-name"
    assert [(t.dtype, t.shape) for t in info.outputs] == [
        ("float16", ()),
        ("bfloat16", ()),
        ("sequence", ()),
        ("sparse_tensor(int64)", (3, "n")),
    ]


def test_missing_empty_and_unreadable_files(tmp_path):
    for path, message in [
        (tmp_path / "absent.onnx", "not found"),
        (tmp_path, "cannot read"),
        (tmp_path / "empty.onnx", "is empty"),
    ]:
        if path.name == "empty.onnx":
            path.write_bytes(b"")
        with pytest.raises(ModelFileError, match=message) as caught:
            read_graph_info(path)
        assert caught.value.path == path and "\n" not in str(caught.value)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x3a" + _varint(2**40) + b"\x00" * 64, "claims 1099511627776 bytes"),
        (b"\x08\x0a\x3a\x05\x0a\x03abc", "fixed-width field 12 runs past the end"),
        (b"\x08" + b"\xff" * 10 + b"\x01", "varint longer than 10 bytes"),
        (b"\x08\xff\xff", "truncated varint"),
        (b"\x08\x0a\x3d\x00\x00\x00\x00", "ModelProto field 7 is fixed32, expected length-delimited"),
        (b"\x0a\x00", "ModelProto field 1 is length-delimited, expected varint"),
        (b"\x08\x0a\x3a\x02\x0a\x01", "claims 1 bytes"),  # a node whose length runs past its graph
        (b"\x08\x0a\x3a\x02\x58\x01", "GraphProto field 11 is varint"),
        (b"\x08\x0a\x0b\x00", "wire type 3"),
        (b"\x08\x0a\x02\x00", "field number 0"),
        (b"\x08\x0a\x09\x00\x00\x00", "fixed-width field 1 runs past the end"),
        (b"\x08\x0a", "no graph"),
        (b"\x3a\x00", "no ir_version"),
        (b"PK\x03\x04 not a model, a zip", "not a valid ONNX model"),
    ],
)
def test_hostile_bytes_raise_model_file_error(tmp_path, data, message):
    path = tmp_path / "bad.onnx"
    path.write_bytes(data)
    with pytest.raises(ModelFileError, match=message) as caught:
        read_graph_info(path)
    assert caught.value.path == path and "\n" not in str(caught.value)


@pytest.mark.parametrize("seed", range(20))
def test_random_bytes_raise_model_file_error(tmp_path, seed):
    rng = np.random.default_rng(seed)
    path = tmp_path / "random.onnx"
    path.write_bytes(rng.integers(0, 256, int(rng.integers(16, 4096)), dtype=np.uint8).tobytes())
    with pytest.raises(ModelFileError, match="not a valid ONNX model"):
        read_graph_info(path)


def test_truncated_models(tmp_path, tiny_path):
    data = tiny_path.read_bytes()
    graph = _tiny_model().graph.SerializeToString()
    start = data.index(graph)
    path = tmp_path / "cut.onnx"
    # Inside the header (before the graph), inside the graph, and in the last byte: never a valid prefix.
    for cut in (1, 2, start - 1, start + 1, start + len(graph) // 2, start + len(graph) - 1, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="not a valid ONNX model"):
            read_graph_info(path)
    # Every cut among the small fields (nodes; inputs, outputs, opsets, metadata), a sample inside the weights:
    # ours fails wherever protobuf itself fails, and with nothing but ModelFileError.
    cuts = sorted({*range(1, 400), *range(400, len(data) - 400, 97), *range(len(data) - 400, len(data))})
    for cut in cuts:
        path.write_bytes(data[:cut])
        try:
            onnx.ModelProto.FromString(data[:cut])
        except Exception:  # noqa: BLE001 - whatever protobuf raises: ours must refuse the bytes too
            with pytest.raises(ModelFileError):
                read_graph_info(path)
            continue
        try:
            assert read_graph_info(path).to_dict() == _expected(path)
        except ModelFileError as exc:
            assert "no graph" in str(exc) or "no ir_version" in str(exc)


def test_reads_without_onnx_torch_or_protobuf(tiny_path):
    code = (
        "import sys, json; sys.modules['onnx'] = None; sys.modules['torch'] = None; "
        "sys.modules['google.protobuf'] = None\n"
        "from edgecnn.runtime.graphinfo import read_graph_info\n"
        "print(json.dumps(read_graph_info(sys.argv[1]).op_counts))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tiny_path)], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == _expected(tiny_path)["op_counts"]


def test_graph_info_is_typed_data():
    info = GraphInfo(7, "p", {"ai.onnx": 13}, (TensorInfo("x", "float", (1, "n", None)),), (), {"Relu": 1}, {})
    assert info.to_dict()["inputs"] == [{"name": "x", "dtype": "float", "shape": [1, "n", None]}]
