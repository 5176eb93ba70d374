"""`edgecnn serve` as a user runs it: a real server process (device install: no torch) on a free loopback port,
talked to with the real tritonclient and raw HTTP, every answer checked against the Predictor on real
Fashion-MNIST test images."""

from __future__ import annotations

import gzip
import io
import json

import numpy as np
import pytest
import tritonclient.http as triton
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from serving import fashion_test_images, running_server
from tritonclient.utils import InferenceServerException

from edgecnn.runtime import Predictor
from edgecnn.runtime.images import load_image
from edgecnn.runtime.scores import softmax

BODY_LIMIT, MAX_IMAGES = 200_000, 8


@pytest.fixture(scope="module")
def images():
    return fashion_test_images()[0][:64]


@pytest.fixture(scope="module")
def predictor():
    return Predictor.from_zoo("keras_same", backend="onnxruntime")


@pytest.fixture(scope="module")
def server():
    limits = ("--max-body-bytes", str(BODY_LIMIT), "--max-images", str(MAX_IMAGES), "--max-pixels", "1000000")
    with running_server("zoo:keras_same", "fp32=zoo:keras_same:fp32", "--backend", "onnxruntime", *limits) as server:
        yield server
        assert server.stop() == 0


def _infer(client, model, array, datatype, *, binary=True, outputs=("logits", "probabilities"), parallel=False):
    """tritonclient's infer, or with ``parallel`` its async_infer (requests in flight together; the client is
    gevent-based: concurrency comes from async_infer, not from threads)."""
    tensor = triton.InferInput("input", list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    wanted = [triton.InferRequestedOutput(name, binary_data=binary) for name in outputs]
    return (client.async_infer if parallel else client.infer)(model, [tensor], outputs=wanted)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_answers_equal_the_predictor_for_every_request_of_a_batch(server, images, predictor, binary):
    client = triton.InferenceServerClient(server.url, concurrency=8)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("keras_same")
    meta = client.get_model_metadata("keras_same")
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
    assert meta["parameters"]["class_names"] == list(predictor.classes)
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data", "classification"]
    graph = predictor.prepare(images, fit="stretch", invert=False)
    requests = [(i, i + 1 + i % 3) for i in range(0, 48, 4)]  # 1-3 images each, sent at once: batched together
    answers = [_infer(client, "keras_same", graph[a:b], "FP32", binary=binary, parallel=True) for a, b in requests]
    pixels = [_infer(client, "keras_same", images[a:b], "UINT8", binary=binary, parallel=True) for a, b in requests]
    answers, pixels = [a.get_result() for a in answers], [p.get_result() for p in pixels]
    for (start, stop), answer, from_pixels in zip(requests, answers, pixels, strict=True):
        expected = predictor.logits(graph[start:stop])
        np.testing.assert_allclose(answer.as_numpy("logits"), expected, rtol=0, atol=1e-5)
        np.testing.assert_allclose(answer.as_numpy("probabilities"), softmax(expected), rtol=0, atol=1e-6)
        np.testing.assert_allclose(from_pixels.as_numpy("logits"), expected, rtol=0, atol=1e-5)
    only = _infer(client, "keras_same", graph[:2], "FP32", binary=binary, outputs=("probabilities",))
    assert only.as_numpy("logits") is None and only.as_numpy("probabilities").shape == (2, 10)


def _png(image: np.ndarray, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, fmt)
    return out.getvalue()


def _multipart(files: list[tuple[str, bytes]], fields: dict[str, str] | None = None) -> tuple[bytes, str]:
    boundary = "edgecnn-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in (fields or {}).items()
    ]
    for name, data in files:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
        parts.append(head.encode() + b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_classify_takes_raw_and_multipart_images_and_answers_as_predict(server, images, predictor, tmp_path):
    files = [(f"shirt{i}.{fmt.lower()}", _png(images[i], fmt)) for i, fmt in enumerate(["PNG", "JPEG", "WEBP"])]
    files.append(("big.png", _png(np.kron(images[3], np.ones((12, 12), np.uint8)))))  # 336×336: the decoder thread
    for name, data in files:
        (tmp_path / name).write_bytes(data)
    expected = predictor.predict([load_image(tmp_path / name) for name, _ in files], top_k=3)
    status, _, body = server.request("POST", "/v2/models/keras_same/classify?top_k=3", files[1][1])
    assert status == 200
    [answer] = json.loads(body)["predictions"]
    assert answer["label"] == expected[1].label and answer["image"] == "the request body"
    assert [t["label"] for t in answer["top_k"]] == [label for label, _ in expected[1].top_k]
    body, content_type = _multipart(files, {"top_k": "3"})
    status, _, reply = server.request("POST", "/v2/models/keras_same/classify", body, {"Content-Type": content_type})
    assert status == 200
    answers = json.loads(reply)["predictions"]
    assert [a["image"] for a in answers] == [name for name, _ in files]
    for answer, want in zip(answers, expected, strict=True):
        assert answer["label"] == want.label
        assert [t["label"] for t in answer["top_k"]] == [label for label, _ in want.top_k]
        assert answer["probability"] == pytest.approx(want.probability, abs=1e-5)
    status, _, reply = server.request("POST", "/v2/models/keras_same/classify?fit=stretch&invert=false", files[0][1])
    stretched = predictor.predict(load_image(tmp_path / files[0][0]), fit="stretch", invert=False)[0]
    assert json.loads(reply)["predictions"][0]["label"] == stretched.label


def _infer_body(shape, datatype="FP32", data=None, name="input"):
    count = int(np.prod(shape))
    return {"inputs": [{"name": name, "datatype": datatype, "shape": shape, "data": data or [0] * count}]}


_TOO_MANY, _FORM = _multipart([(f"{i}.png", _png(np.zeros((28, 28), np.uint8))) for i in range(MAX_IMAGES + 1)])

BAD_REQUESTS = {
    "too many uploads": ("POST", "/v2/models/keras_same/classify", _TOO_MANY, {"Content-Type": _FORM}, 413),
    "malformed JSON": ("POST", "/v2/models/keras_same/infer", b'{"inputs": [', {}, 400),
    "wrong shape": ("POST", "/v2/models/keras_same/infer", _infer_body([1, 28, 27]), {}, 400),
    "wrong datatype": ("POST", "/v2/models/keras_same/infer", _infer_body([1, 1, 28, 28], "FP64"), {}, 400),
    "wrong input name": ("POST", "/v2/models/keras_same/infer", _infer_body([1, 1, 28, 28], name="x"), {}, 400),
    "data short of its shape": ("POST", "/v2/models/keras_same/infer", _infer_body([2, 28, 28], "UINT8", [1]), {}, 400),
    "NaN input": (
        "POST",
        "/v2/models/keras_same/infer",
        b'{"inputs":[{"name":"input","datatype":"FP32",'
        b'"shape":[1,1,28,28],"data":[' + b",".join([b"NaN"] * 784) + b"]}]}",
        {},
        400,
    ),
    "unknown output": (
        "POST",
        "/v2/models/keras_same/infer",
        {**_infer_body([1, 28, 28], "UINT8"), "outputs": [{"name": "features"}]},
        {},
        400,
    ),
    "unknown model": ("POST", "/v2/models/nope/infer", _infer_body([1, 28, 28], "UINT8"), {}, 404),
    "unknown version": ("GET", "/v2/models/keras_same/versions/2", None, {}, 404),
    "unknown route": ("GET", "/v2/nothing/here", None, {}, 404),
    "wrong method": ("GET", "/v2/models/keras_same/infer", None, {}, 405),
    "oversized body": ("POST", "/v2/models/keras_same/infer", b"x" * (BODY_LIMIT + 1), {}, 413),
    "too many images": ("POST", "/v2/models/keras_same/infer", _infer_body([MAX_IMAGES + 1, 28, 28], "UINT8"), {}, 413),
    "gzip bomb": (
        "POST",
        "/v2/models/keras_same/infer",
        gzip.compress(b" " * (BODY_LIMIT * 4)),
        {"Content-Encoding": "gzip"},
        413,
    ),
    "unknown encoding": ("POST", "/v2/models/keras_same/infer", b"{}", {"Content-Encoding": "br"}, 415),
    "corrupt image": ("POST", "/v2/models/keras_same/classify", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, {}, 400),
    "empty classify body": ("POST", "/v2/models/keras_same/classify", b"", {}, 400),
    "image past --max-pixels": (
        "POST",
        "/v2/models/keras_same/classify",
        _png(np.zeros((1001, 1000), np.uint8)),
        {},
        400,
    ),
    "bad top_k": ("POST", "/v2/models/keras_same/classify?top_k=11", _png(np.zeros((28, 28), np.uint8)), {}, 400),
    "unknown parameter": ("POST", "/v2/models/keras_same/classify?k=1", _png(np.zeros((28, 28), np.uint8)), {}, 400),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_a_bad_request_gets_its_status_and_one_line_error_and_the_server_stays_healthy(server, images, case):
    method, path, body, headers, want = BAD_REQUESTS[case]
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    status, _, reply = server.request(method, path, data, headers)
    error = json.loads(reply)["error"]
    assert status == want, error
    assert error and "\n" not in error and "Traceback" not in error
    assert server.request("GET", "/v2/health/ready")[0] == 200
    ok = _infer(triton.InferenceServerClient(server.url), "keras_same", images[:1], "UINT8")
    assert ok.as_numpy("logits").shape == (1, 10)


def test_gzip_and_deflate_bodies_are_accepted(server, images, predictor):
    client = triton.InferenceServerClient(server.url)
    tensor = triton.InferInput("input", [4, 28, 28], "UINT8")
    tensor.set_data_from_numpy(images[:4])
    expected = predictor.logits(predictor.prepare(images[:4], fit="stretch", invert=False))
    for algorithm in ("gzip", "deflate"):
        answer = client.infer("keras_same", [tensor], request_compression_algorithm=algorithm)
        np.testing.assert_allclose(answer.as_numpy("logits"), expected, rtol=0, atol=1e-5)


def test_a_failing_inference_answers_500_for_its_request_only_and_the_server_goes_on(server, images, predictor):
    # 3e38 is finite, so it passes the input checks; in the float model it overflows to inf and the scores to NaN
    client = triton.InferenceServerClient(server.url, concurrency=8)
    bad = np.full((1, 1, 28, 28), 3e38, np.float32)
    graph = predictor.prepare(images[:6], fit="stretch", invert=False)

    def result(pending):
        try:
            return pending.get_result().as_numpy("logits")
        except InferenceServerException as exc:
            return exc

    pending = [_infer(client, "fp32", bad if i == 3 else graph[i : i + 1], "FP32", parallel=True) for i in range(6)]
    answers = [result(p) for p in pending]
    assert isinstance(answers[3], InferenceServerException) and answers[3].status() == "500"
    assert "NaN or infinite scores" in answers[3].message()
    assert all(isinstance(a, np.ndarray) for i, a in enumerate(answers) if i != 3)
    assert client.is_server_live() and _infer(client, "fp32", graph[:1], "FP32").as_numpy("logits").shape == (1, 10)


def _scrape(server) -> dict[tuple[str, tuple], float]:
    status, _, text = server.request("GET", "/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def test_metrics_parse_and_count_what_was_sent(server, images):
    before = _scrape(server)
    client = triton.InferenceServerClient(server.url)
    for i in range(5):
        _infer(client, "keras_same", images[i : i + 2], "UINT8")
    server.request("POST", "/v2/models/keras_same/infer", b"{", {})
    after = _scrape(server)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("edgecnn_requests_total", route="infer", model="keras_same", status="200") == 5
    assert delta("edgecnn_requests_total", route="infer", model="keras_same", status="400") == 1
    assert delta("edgecnn_request_duration_seconds_count", route="infer", model="keras_same") == 6
    assert delta("edgecnn_batch_size_sum", model="keras_same") == 10  # images computed: 5 requests × 2
    assert delta("edgecnn_batch_size_count", model="keras_same") == delta(
        "edgecnn_inference_duration_seconds_count", model="keras_same"
    )
    assert after[("edgecnn_queue_images", (("model", "keras_same"),))] == 0
    assert after[("edgecnn_model_load_seconds", (("model", "fp32"),))] > 0
    logged = [e for e in server.access_log() if e["route"] == "infer" and e["status"] == 400]
    assert logged and logged[-1]["error"].startswith("the request is not valid JSON")
