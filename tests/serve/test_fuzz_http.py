"""The HTTP fuzzer: schemathesis drives a real server over the OpenAPI description of its routes
(tests/serve/openapi.json: the Open Inference Protocol with the binary data extension, and classify), with
requests that keep to the description and requests that break it (wrong types, missing fields, stray values,
odd headers). Whatever comes, the server answers — within seconds — with a status below 500 and, for an
error, the protocol's JSON error; it stays healthy, and every answer is counted in /metrics. Seeded and
bounded: the same cases each run, some hundreds of requests in all. A second, hypothesis-driven fuzzer sends
raw requests with any JSON value in any field, any bytes in a header, any text in a parameter."""

from __future__ import annotations

import io
import json
import socket
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from serving import running_server
from test_boundary_properties import FIELDS, _put, _template, json_values

OPENAPI = Path(__file__).with_name("openapi.json")
EXAMPLES = 60  # per route and method; each a request of a few milliseconds
schema = schemathesis.openapi.from_path(OPENAPI)
schema.config.generation.update(max_examples=EXAMPLES, deterministic=True, database="none")
answered: list[int] = []
PNG = io.BytesIO()
Image.fromarray(np.zeros((28, 28), np.uint8)).save(PNG, "PNG")
PNG = PNG.getvalue()


@pytest.fixture(scope="module")
def fuzzed():
    with running_server("zoo:fashion_bn", "--max-images", "16", "--max-body-bytes", "100000") as server:
        yield server
        assert server.request("GET", "/v2/health/ready")[0] == 200
        scraped = server.request("GET", "/metrics")[2].decode()
        counted = sum(
            float(line.rsplit(" ", 1)[1]) for line in scraped.splitlines() if line.startswith("edgecnn_requests_total{")
        )
        assert counted >= len(answered), "an answer is missing from /metrics"
        assert server.stop() == 0
        assert not [line for line in server.lines if "Traceback" in line or "internal error" in line]


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_500_or_a_hang(case, fuzzed):
    response = case.call(base_url=f"http://{fuzzed.url}", timeout=10)  # a hang fails as a timeout
    answered.append(response.status_code)
    assert response.status_code < 500, response.text[:300]
    if response.status_code >= 400:
        error = json.loads(response.content)["error"]
        assert error and "\n" not in error and "Traceback" not in error


# What schemathesis does not reach: any JSON value in any field of an infer body, any bytes in the headers a client
# fills in, any text in classify's parameters — sent raw, as a hostile client would.
HEADERS = ("Inference-Header-Content-Length", "Content-Encoding", "Content-Type", "Authorization", "X-Anything")
header_bytes = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"").strip(b" \t"))
requests = st.one_of(
    st.tuples(st.just("field"), st.sampled_from(FIELDS), json_values),
    st.tuples(st.just("header"), st.sampled_from(HEADERS), header_bytes | st.text(max_size=20).map(str.encode)),
    st.tuples(st.just("query"), st.sampled_from(("top_k", "fit", "invert", "x")), st.text(max_size=20)),
)


@given(requests)
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_field_header_or_parameter_gets_an_answer_below_500(fuzzed, sent):
    kind, name, value = sent
    path, headers, body = "/v2/models/fashion_bn/infer", {}, json.dumps(_template()).encode()
    if kind == "field":
        body = json.dumps(_put(_template(), name, value)).encode()
    elif kind == "header":
        headers[name.encode()] = value
    else:
        path, body = "/v2/models/fashion_bn/classify?" + urllib.parse.urlencode({name: value}), PNG
    status, reply = _raw(fuzzed.port, path, headers, body)
    answered.append(status)
    assert 200 <= status < 500, reply[:300]
    if status >= 400:
        error = json.loads(reply)["error"]
        assert error and "\n" not in error


def _raw(port: int, path: str, headers: dict[bytes, bytes], body: bytes) -> tuple[int, bytes]:
    head = [f"POST {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    head.append(b"Content-Length: %d" % len(body))
    head += [name + b": " + value for name, value in headers.items()]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # a hang fails as a timeout
        sock.sendall(b"\r\n".join(head) + b"\r\n\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]
