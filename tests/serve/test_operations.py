"""`edgecnn serve` in operation: a full queue answers 503 with Retry-After, SIGTERM drains what is in flight
and exits 0, the token guards every route but health, and start-up failures are one line and exit 1."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time

import numpy as np
import pytest
import tritonclient.http as triton
from conftest import run_cli
from serving import fashion_test_images, running_server
from tritonclient.utils import InferenceServerException

BATCH = 64


def _pixels_request(images: np.ndarray) -> tuple[bytes, dict[str, str]]:
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "UINT8",
                    "shape": list(images.shape),
                    "parameters": {"binary_data_size": images.nbytes},
                }
            ]
        }
    ).encode()
    return head + images.tobytes(), {"Inference-Header-Content-Length": str(len(head))}


def test_a_full_queue_answers_503_with_retry_after_at_once_and_the_queued_are_answered():
    images = fashion_test_images()[0][:64]
    # the batch holding A waits (up to 10 s) while B is still arriving: A's 32 images fill half the queue
    args = ("zoo:keras_same", "--queue", "64", "--max-images", "64", "--max-batch", "128", "--max-delay-ms", "10000")
    with running_server(*args) as server:
        late = _send_head(server.port, *_pixels_request(images[:1]))  # B: headers and half its body
        time.sleep(0.2)
        answers: dict[str, tuple] = {}
        first = threading.Thread(target=lambda: answers.update(A=_post(server, images[:32])))
        first.start()
        time.sleep(0.3)
        started = time.perf_counter()
        status, headers, body = _post(server, images)  # C: 32 + 64 images > 64
        assert status == 503 and time.perf_counter() - started < 2, "refused at once, not after the wait"
        assert headers["retry-after"] == "1" and "limit 64" in json.loads(body)["error"]
        fits = threading.Thread(target=lambda: answers.update(D=_post(server, images[32:63])))  # 32 + 31: queued
        fits.start()
        time.sleep(0.3)
        assert _finish(late, _pixels_request(images[:1])[0])[0] == 200  # B: 32 + 31 + 1 = 64 fits; the batch runs
        first.join()
        fits.join()
        assert answers["A"][0] == answers["D"][0] == 200
        assert server.request("GET", "/v2/health/ready")[0] == 200
        assert server.stop() == 0


def _post(server, images: np.ndarray) -> tuple[int, dict[str, str], bytes]:
    return server.request("POST", "/v2/models/keras_same/infer", *_pixels_request(images))


def _send_head(port: int, body: bytes, headers: dict[str, str]) -> socket.socket:
    """Open a connection and send the request line, headers and half the body: the request is in flight."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    lines = ["POST /v2/models/keras_same/infer HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body[: len(body) // 2])
    return sock


def _finish(sock: socket.socket, body: bytes) -> tuple[int, bytes]:
    sock.sendall(body[len(body) // 2 :])
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, rest = data.split(b"\r\n\r\n", 1)
    length = int(
        next(v for k, v in (line.split(b": ", 1) for line in head.split(b"\r\n")[1:]) if k.lower() == b"content-length")
    )
    while len(rest) < length:
        rest += sock.recv(65536)
    sock.close()
    return int(head.split()[1]), rest


def test_sigterm_lets_the_requests_in_flight_finish_then_exits_0():
    images = fashion_test_images()[0][:8]
    with running_server("zoo:keras_same") as server:
        bodies = [_pixels_request(images[i : i + 1]) for i in range(8)]
        socks = [_send_head(server.port, body, headers) for body, headers in bodies]
        time.sleep(0.3)  # the server has begun all eight
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert server.process.poll() is None, "the server quit with requests in flight"
        late = _send_head(server.port, *bodies[0])  # draining: a new request is refused cleanly, not reset
        assert _finish(late, bodies[0][0])[0] == 503
        answers = [_finish(sock, body) for sock, (body, _) in zip(socks, bodies, strict=True)]
        assert [status for status, _ in answers] == [200] * 8
        assert server.stop() == 0
        assert any("stopped after" in line for line in server.lines)


def test_with_a_token_every_route_but_health_needs_it_and_it_is_never_logged(tmp_path):
    token = "s3cret-token-for-the-test"
    (tmp_path / "token").write_text(token + "\n")
    images = fashion_test_images()[0][:1]
    with running_server("zoo:keras_same", "--token-file", str(tmp_path / "token")) as server:
        assert server.request("GET", "/v2/health/live")[0] == 200
        assert server.request("GET", "/v2/health/ready")[0] == 200
        for path in ("/v2", "/v2/models/keras_same", "/metrics"):
            status, headers, body = server.request("GET", path)
            assert status == 401 and headers["www-authenticate"] == "Bearer" and "Bearer" in json.loads(body)["error"]
        assert server.request("GET", "/v2", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert server.request("GET", "/v2", headers={"Authorization": f"Basic {token}"})[0] == 401
        tensor = triton.InferInput("input", [1, 28, 28], "UINT8")
        tensor.set_data_from_numpy(images)
        with pytest.raises(InferenceServerException, match="401|Bearer"):
            triton.InferenceServerClient(server.url).infer("keras_same", [tensor])
        client = triton.InferenceServerClient(server.url)
        answer = client.infer("keras_same", [tensor], headers={"Authorization": f"Bearer {token}"})
        assert answer.as_numpy("logits").shape == (1, 10)
        assert server.stop() == 0
    assert token not in "".join(server.lines) and len(server.access_log()) >= 8


@pytest.mark.parametrize(
    "args, message",
    [
        (["no/such/model.onnx"], "no/such/model.onnx"),
        (["zoo:keras_same", "keras_same=zoo:convnet5"], "two models are named keras_same"),
        (["bad name=zoo:keras_same"], "cannot name a served model"),
        (["zoo:keras_same", "--max-batch", "0"], "max_batch must be"),
        (["zoo:keras_same", "--token-file", "EMPTY"], "must hold one token"),
    ],
    ids=["missing file", "same name twice", "bad name", "bad setting", "empty token file"],
)
def test_start_up_failures_are_one_line_and_exit_1(tmp_path, args, message):
    (tmp_path / "EMPTY").write_text("\n")
    args = [str(tmp_path / "EMPTY") if a == "EMPTY" else a for a in args]
    result = run_cli("serve", *args, "--port", "0", "--stop-after", "5", block_torch=True)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_taken_port_is_one_line_and_exit_1():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_cli("serve", "zoo:keras_same", "--port", str(port), "--stop-after", "5", block_torch=True)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_without_the_serve_extra_it_says_which_to_install():
    result = run_cli("serve", "zoo:keras_same", "--port", "0", "--stop-after", "5", blocked=("starlette", "uvicorn"))
    assert result.returncode == 1
    assert "pip install 'edgecnn[serve]'" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_start_up_tunes_the_models_before_it_reports_ready_and_the_next_start_reads_the_cache(tmp_path):
    """backend auto: serve decides on this machine before it opens its port (issue 23): a tuning at its own
    --threads (1), said on stderr and in the model metadata, cached; a second start reads the entry."""
    env = {"EDGECNN_TUNE": "1", "EDGECNN_CACHE": str(tmp_path / "cache")}
    with running_server("zoo:fashion_bn", env=env) as server:
        tuned = [line for line in server.lines if line.startswith("edgecnn: fashion_bn:")]
        assert len(tuned) == 1 and "tuned now on this machine" in tuned[0], server.lines
        assert server.lines.index(tuned[0]) < next(i for i, line in enumerate(server.lines) if "serving " in line)
        status, meta = server.json("GET", "/v2/models/fashion_bn")
        assert status == 200 and meta["parameters"]["chosen_by"].startswith("tuned now on this machine")
        [entry] = (tmp_path / "cache" / "tune").glob("*-t1.json")  # pinned to serve's one thread
        assert json.loads(entry.read_text())["threads"] == 1
        assert server.stop() == 0
    with running_server("zoo:fashion_bn", env=env) as server:
        status, meta = server.json("GET", "/v2/models/fashion_bn")
        assert (
            meta["parameters"]["chosen_by"].startswith("tuned on this machine")
            and str(entry) in meta["parameters"]["chosen_by"]
        )
        assert server.stop() == 0
