"""Hostile requests against a real server, one per class: heads past the limits (431, 414) answered before they
are held, malformed HTTP answered in JSON, a client gone mid-body logged in one line (499), client text that
UTF-8 cannot encode echoed safely, JSON types where strings belong, non-ASCII digits — each a 4xx JSON error,
each in /metrics and the access log, the server healthy after each and its stderr free of tracebacks."""

from __future__ import annotations

import io
import json
import socket
import time

import numpy as np
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from serving import running_server

MODEL = "/v2/models/fashion_bn"


@pytest.fixture(scope="module")
def server():
    limits = ("--max-header-bytes", "4096", "--max-headers", "20", "--max-url-bytes", "1024", "--max-images", "8")
    with running_server("zoo:fashion_bn", *limits) as server:
        yield server
        assert server.stop() == 0
        assert not [line for line in server.lines if "Traceback" in line or "internal error" in line], server.lines


def _raw(port: int, data: bytes, *, linger: float = 0.0) -> tuple[int, bytes]:
    """Send ``data`` (streamed, as a client that keeps sending would) and read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            for start in range(0, len(data), 1 << 16):
                sock.sendall(data[start : start + (1 << 16)])
        except OSError:  # the server answered and stopped reading: the answer is still there to read
            pass
        time.sleep(linger)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _get(target: bytes, headers: bytes = b"") -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers + b"\r\n"


def _post(path: str, body: bytes, headers: bytes = b"") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len(body)}\r\n".encode()
    return head + headers + b"\r\n" + body


def _png() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(out, "PNG")
    return out.getvalue()


def _form(disposition: str, charset: str) -> tuple[bytes, bytes]:
    body = b"--b\r\nContent-Disposition: " + disposition.encode("latin-1") + b"\r\n\r\n" + _png() + b"\r\n--b--\r\n"
    return body, f"Content-Type: multipart/form-data; boundary=b; charset={charset}\r\n".encode()


HEADS = {
    "one header of 8 MB": (_get(b"/v2", b"X-Big: " + b"a" * (8 << 20) + b"\r\n"), 431),
    "many small headers": (_get(b"/v2", b"".join(b"X-%d: 1\r\n" % i for i in range(5000))), 431),
    "a head just past the limit in one read": (_get(b"/v2", b"X-A: " + b"a" * 4100 + b"\r\n"), 431),
    "a 1 MB URL": (_get(b"/v2?" + b"q" * (1 << 20)), 414),
    "a URL just past the limit": (_get(b"/v2/" + b"x" * 1030), 414),
    "not HTTP": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64) + b"\r\n\r\n", 400),
    "a bad method": (b"BREW /v2 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "non-ASCII digits in Content-Length": (
        _post(MODEL + "/infer", b"{}").replace(b"Length: 2", b"Length: \xd9\xa2"),
        400,
    ),
    "an Upgrade with a body": (_post(MODEL + "/infer", b"{}", b"Connection: Upgrade\r\nUpgrade: h2c\r\n"), 400),
}
BODIES = {
    "a list for the datatype": (_post(MODEL + "/infer", b'{"inputs":[{"name":"input","datatype":["FP32"]}]}'), 400),
    "an object for the id": (_post(MODEL + "/infer", b'{"id":{},"inputs":[{"name":"input"}]}'), 400),
    "a shape whose product overflows": (
        _post(
            MODEL + "/infer",
            b'{"inputs":[{"name":"input","datatype":"UINT8","shape":[0' + b",4294967295" * 31 + b"]}]}",
        ),
        400,
    ),
    "nesting past the parser": (_post(MODEL + "/infer", b"[" * 100_000 + b"]" * 100_000), 400),
    "an integer past Python's digit limit": (_post(MODEL + "/infer", b'{"inputs":[' + b"9" * 5000 + b"]}"), 400),
    "superscript digits in a header": (
        _post(MODEL + "/infer", b"{}", b"Inference-Header-Content-Length: \xb2\r\n"),
        400,
    ),
    "superscript digits in top_k": (_post(MODEL + "/classify?top_k=%C2%B2", _png()), 400),
    "a top_k of 400 digits": (_post(MODEL + "/classify?top_k=" + "9" * 400, _png()), 400),
    "more values than the images a request may hold": (
        _post(MODEL + "/infer", b'{"inputs":[{"name":"input","datatype":"UINT8","shape":[9,28,28],"data":[]}]}'),
        413,
    ),
}


@pytest.mark.parametrize("case", [*HEADS, *BODIES])
def test_a_hostile_request_gets_its_4xx_json_error_counted_and_logged(server, case):
    data, want = {**HEADS, **BODIES}[case]
    before = _requests_counted(server, want)
    status, body = _raw(server.port, data)
    assert status == want, body[:200]
    error = json.loads(body)["error"]
    assert error and "\n" not in error
    assert _requests_counted(server, want) == before + 1
    assert any(entry["status"] == want and entry.get("error") == error for entry in server.access_log())
    assert server.request("GET", "/v2/health/ready")[0] == 200


@pytest.mark.parametrize("charset", ["utf-7", "unicode_escape"])
def test_a_file_name_utf8_cannot_encode_is_echoed_as_json_escapes(server, charset):
    disposition = 'form-data; name="image"; filename="' + ("+2AA-" if charset == "utf-7" else "\\\\ud800") + '.png"'
    body, headers = _form(disposition, charset)
    status, reply = _raw(server.port, _post(MODEL + "/classify", body, headers))
    assert status == 200 and json.loads(reply)["predictions"][0]["image"].endswith(".png")


def test_a_client_gone_mid_body_is_one_access_log_line_with_499(server):
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(_post(MODEL + "/infer", b"{" * 1000)[:-500].replace(b"Length: 1000", b"Length: 100000"))
        time.sleep(0.3)
    time.sleep(0.3)
    gone = [e for e in server.access_log() if e["status"] == 499]
    assert len(gone) == 1 and "disconnected" in gone[0]["error"] and gone[0]["route"] == "infer"
    assert _requests_counted(server, 499) == 1


def _requests_counted(server, status: int) -> float:
    _, _, text = server.request("GET", "/metrics")
    return sum(
        sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
        if sample.name == "edgecnn_requests_total" and sample.labels["status"] == str(status)
    )
