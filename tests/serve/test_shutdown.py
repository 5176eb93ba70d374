"""Stopping under load, and model calls that do not end: SIGTERM, SIGINT and SIGHUP drain — every request is
answered (200) or refused cleanly (503, or connection refused), none reset or left without an answer, over 20
repeated runs of 64 clients; a model call past --call-timeout answers 504 and the server goes on; a call still
running at the drain's deadline is stopped and the process exits 1 with one line, in bounded time."""

from __future__ import annotations

import json
import re
import signal
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from serving import running_server

CLIENTS, RUNS = 64, 20
CLEAN = {"200", "503", "refused"}  # answered, or refused before any byte of the request was taken


def _request(images: int = 1) -> bytes:
    head = {"inputs": [{"name": "input", "datatype": "UINT8", "shape": [images, 28, 28]}]}
    head["inputs"][0]["parameters"] = {"binary_data_size": images * 784}
    text = json.dumps(head).encode()
    body = text + bytes(images * 784)
    lines = [b"POST /v2/models/fashion_bn/infer HTTP/1.1", b"Host: 127.0.0.1", b"Content-Length: %d" % len(body)]
    lines.append(b"Inference-Header-Content-Length: %d" % len(text))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


REQUEST = _request()


def _exchange(port: int, request: bytes = REQUEST) -> str:
    """One request on a new connection: its status, "refused", or how it was lost."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    except ConnectionRefusedError:
        return "refused"
    with sock:
        try:
            sock.sendall(request)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
                if length and len(body) >= int(length[1]):
                    return head.split(b" ", 2)[1].decode()
            return "lost: closed without an answer"
        except OSError as exc:
            return f"lost: {type(exc).__name__}"


def _hammer(sig: int, before: float = 0.5) -> tuple[int, Counter]:
    """CLIENTS clients sending without pause, one connection per request, through ``sig`` and the exit."""
    with running_server("zoo:fashion_bn", "--drain-timeout", "20") as server:
        outcomes: list[str] = []
        stop = threading.Event()

        def client() -> None:
            while not stop.is_set():
                outcomes.append(_exchange(server.port))
                if outcomes[-1] == "refused":
                    return

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(before)
        server.process.send_signal(sig)
        code = server.process.wait(60)
        stop.set()
        for thread in threads:
            thread.join(30)
        return code, Counter(outcomes)


def test_sigterm_under_load_loses_no_request_over_repeated_runs():
    totals: Counter = Counter()
    for run in range(RUNS):
        code, outcomes = _hammer(signal.SIGTERM)
        totals += outcomes
        lost = {k: v for k, v in outcomes.items() if k not in CLEAN}
        assert code == 0 and not lost, f"run {run}: exit {code}, {dict(outcomes)}"
        assert outcomes["200"] > 0 and outcomes["refused"] + outcomes["503"] > 0, dict(outcomes)
    print(f"{RUNS} runs of {CLIENTS} clients: {dict(totals)}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP], ids=["SIGINT", "SIGHUP"])
def test_sigint_and_sighup_drain_as_sigterm_does(sig):
    code, outcomes = _hammer(sig)
    assert code == 0 and set(outcomes) <= CLEAN and outcomes["200"] > 0, dict(outcomes)


@pytest.fixture(scope="module")
def stuck_model(tmp_path_factory) -> Path:
    """fashion_bn with a Loop of 10^12 steps that runs when an input value passes 1000: a call that never ends."""
    from slow_model import spinning_model

    return spinning_model(tmp_path_factory.mktemp("stuck") / "stuck.onnx")


def _infer(port: int, value: float) -> tuple[int, dict]:
    x = np.zeros((1, 1, 28, 28), np.float32)
    x[0, 0, 0, 0] = value
    body = json.dumps(
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": x.ravel().tolist()}]}
    )
    lines = [
        b"POST /v2/models/stuck/infer HTTP/1.1",
        b"Host: x",
        b"Connection: close",
        b"Content-Length: %d" % len(body),
    ]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, reply = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(reply)


def test_a_call_past_call_timeout_answers_504_and_the_server_goes_on(stuck_model):
    with running_server(f"stuck={stuck_model}", "--call-timeout", "0.5") as server:
        assert _infer(server.port, 0)[0] == 200
        status, reply = _infer(server.port, 5000)
        assert status == 504 and "--call-timeout" in reply["error"]
        assert _infer(server.port, 0)[0] == 200  # the model's thread and the event loop are free again
        assert server.stop() == 0
    logged = [e for e in server.access_log() if e["status"] == 504]
    assert len(logged) == 1 and "--call-timeout" in logged[0]["error"]


def test_a_call_still_running_at_the_drain_deadline_is_stopped_and_the_exit_is_1_in_one_line(stuck_model):
    # the call runs on the event loop (a fast model's calls do): only the watchdog thread can end it
    with running_server(f"stuck={stuck_model}", "--call-timeout", "600", "--drain-timeout", "1") as server:
        for _ in range(3):
            assert _infer(server.port, 0)[0] == 200
        answers: list = []
        waiting = threading.Thread(target=lambda: answers.append(_infer(server.port, 5000)))
        waiting.start()
        time.sleep(0.5)
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(30)  # bounded: not the 600 s the call would take
        waiting.join(30)
        time.sleep(0.1)
    assert code == 1
    assert answers[0][0] == 504 and "--drain-timeout" in answers[0][1]["error"]
    errors = [line for line in server.lines if line.startswith("edgecnn: error")]
    assert len(errors) == 1 and "1 model call(s) abandoned" in errors[0], server.lines
    assert not [line for line in server.lines if "Traceback" in line]
