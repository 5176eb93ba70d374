"""The Open Inference Protocol bodies: what tritonclient.http sends (JSON and binary tensor data, laid
out as the protocol's documents show), decoded to the arrays the client holds, and every malformed body
refused with a 400 before a tensor is built."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgecnn.serve.protocol import ProtocolError, decode_infer_request, encode_infer_response


@pytest.fixture(scope="module")
def images(fashion):
    return fashion.test_images[:3].numpy()  # uint8 3×1×28×28, real


def _binary_body(inputs: dict[str, np.ndarray], outputs: list[dict]) -> tuple[bytes, int]:
    """A request as tritonclient.http lays it out with binary_data=True: JSON, then each tensor's bytes."""
    head = {
        "inputs": [
            {
                "name": name,
                "shape": list(a.shape),
                "datatype": {"uint8": "UINT8", "float32": "FP32"}[a.dtype.name],
                "parameters": {"binary_data_size": a.nbytes},
            }
            for name, a in inputs.items()
        ],
        "outputs": outputs,
    }
    text = json.dumps(head).encode()
    return text + b"".join(a.tobytes() for a in inputs.values()), len(text)


def test_binary_and_json_inputs_decode_to_the_arrays_sent(images):
    x = (images / 255.0).astype(np.float32)
    body, length = _binary_body({"pixels": images, "x": x}, [{"name": "logits", "parameters": {"binary_data": True}}])
    request = decode_infer_request(body, length)
    assert np.array_equal(request.inputs["pixels"], images) and np.array_equal(request.inputs["x"], x)
    assert request.outputs[0].name == "logits" and request.outputs[0].binary
    as_json = json.dumps(
        {"id": "7", "inputs": [{"name": "x", "shape": [3, 1, 28, 28], "datatype": "FP32", "data": x.tolist()}]}
    ).encode()
    decoded = decode_infer_request(as_json)
    assert decoded.id == "7" and np.array_equal(decoded.inputs["x"], x) and decoded.outputs == ()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(inputs=[]), "non-empty 'inputs'"),
        (lambda r: r["inputs"][0].update(datatype="FP8"), "datatype 'FP8'"),
        (lambda r: r["inputs"][0].update(shape=[2, -1]), "'shape' must be"),
        (lambda r: r["inputs"][0].update(data=[1, 2, 3]), "holds 3 numbers"),
        (lambda r: r["inputs"][0].update(data=[[1, 2], [3]]), "rectangular"),
        (lambda r: r["inputs"][0].update(datatype="UINT8", data=[0.5, 1, 2, 3]), "whole numbers"),
        (lambda r: r["inputs"][0].update(datatype="UINT8", data=[0, 1, 2, 256]), "range 0..255"),
        (lambda r: r["inputs"][0].pop("data"), "neither 'data'"),
        (lambda r: r["inputs"][0].update(datatype="BOOL", data=[0, 1, 2, 1]), "true/false"),
        (lambda r: r["inputs"].append(dict(r["inputs"][0])), "given twice"),
    ],
)
def test_malformed_json_requests_are_400s_in_one_line(change, message):
    request = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}]}
    change(request)
    with pytest.raises(ProtocolError, match=message) as info:
        decode_infer_request(json.dumps(request).encode())
    assert info.value.status == 400 and "\n" not in str(info.value)


def test_binary_sizes_must_match_the_shape_and_the_body(images):
    body, length = _binary_body({"pixels": images}, [])
    for broken, why in [
        (body[:-1], "binary_data_size"),  # a byte short
        (body + b"\0", "no input claims"),  # a byte extra
        (b"{not json" + body[length:], "not valid JSON"),
    ]:
        with pytest.raises(ProtocolError, match=why):
            decode_infer_request(broken, length)
    with pytest.raises(ProtocolError, match="does not fit"):
        decode_infer_request(body, len(body) + 1)


def test_responses_round_trip_as_json_and_as_binary():
    logits = np.arange(20, dtype=np.float32).reshape(2, 10) / 7
    labels = np.array([3, 9], dtype=np.int64)
    body, length = encode_infer_response("keras_same", {"logits": logits, "index": labels}, {"logits"}, request_id="r1")
    head = json.loads(body[:length])
    assert head["id"] == "r1" and head["model_name"] == "keras_same"
    assert head["outputs"][0] == {
        "name": "logits",
        "datatype": "FP32",
        "shape": [2, 10],
        "parameters": {"binary_data_size": 80},
    }
    assert np.array_equal(np.frombuffer(body[length:], "<f4").reshape(2, 10), logits)
    assert head["outputs"][1]["data"] == [3, 9] and head["outputs"][1]["datatype"] == "INT64"
    plain, none = encode_infer_response("m", {"logits": logits}, set())
    assert none is None and np.allclose(json.loads(plain)["outputs"][0]["data"], logits.ravel())
