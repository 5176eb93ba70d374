"""`edgecnn serve --engine ray` on a real local Ray cluster (loopback only, stopped with the server): two Ray
Serve replicas of the same server, talked to with tritonclient and KServe's own v2 REST client, every answer
checked against the Predictor on real Fashion-MNIST test images; one replica's process killed under load."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton
from conftest import REPO
from ray_processes import session_processes
from serve.serving import fashion_test_images, running_server

from edgecnn.runtime import Predictor

pytest.importorskip("ray", reason="the [ray] extra is not installed")  # tools/test.sh installs it

MODEL = "keras_same"
REPLICA = "edgecnn-replica"


@pytest.fixture(scope="module")
def predictor():
    return Predictor.from_zoo(MODEL, backend="onnxruntime")


@pytest.fixture(scope="module")
def graph(predictor):
    return predictor.prepare(fashion_test_images()[0][:64], fit="stretch", invert=False)


@pytest.fixture(scope="module")
def access_log(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ray-serve") / "access.jsonl"


@pytest.fixture(scope="module")
def server(access_log):
    args = (f"zoo:{MODEL}", "--backend", "onnxruntime", "--engine", "ray", "--replicas", "2")
    with running_server(*args, "--access-log", str(access_log), limit=400, start_timeout=240) as server:
        yield server
        assert server.stop(timeout=120) == 0, "".join(server.lines)
        assert any("stopped" in line for line in server.lines)


def _infer_body(x: np.ndarray) -> dict:
    return {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}


def test_tritonclient_and_kserve_get_the_predictors_answers(server, predictor, graph):
    client = triton.InferenceServerClient(server.url)
    assert client.is_server_ready() and client.is_model_ready(MODEL)
    for start, stop in [(0, 1), (1, 4), (4, 12)]:
        tensor = triton.InferInput("input", list(graph[start:stop].shape), "FP32")
        tensor.set_data_from_numpy(graph[start:stop], binary_data=True)
        answer = client.infer(MODEL, [tensor], outputs=[triton.InferRequestedOutput("logits", binary_data=True)])
        np.testing.assert_allclose(answer.as_numpy("logits"), predictor.logits(graph[start:stop]), atol=1e-5, rtol=0)

    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    async def kserve_answers() -> list[np.ndarray]:
        rest = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
        answers = []
        for binary in (True, False):
            tensor = InferInput("input", list(graph[12:20].shape), "FP32")
            tensor.set_data_from_numpy(graph[12:20], binary_data=binary)
            request = InferRequest(model_name=MODEL, infer_inputs=[tensor], request_id=f"kserve-{binary}")
            response = await rest.infer(f"http://{server.url}", request, model_name=MODEL)
            answers.append({output.name: output.as_numpy() for output in response.outputs}["logits"])
        await rest.close()
        return answers

    for logits in asyncio.run(kserve_answers()):
        np.testing.assert_allclose(logits, predictor.logits(graph[12:20]), atol=1e-5, rtol=0)


def test_requests_spread_over_both_replicas_each_logging_and_counting_its_own(server, access_log):
    seen = {server.request("GET", f"/v2/models/{MODEL}/ready")[1].get(REPLICA) for _ in range(40)}
    assert len(seen - {None}) == 2, seen
    time.sleep(0.5)  # the replicas' log lines reach the file
    lines = [json.loads(line) for line in access_log.read_text().splitlines()]
    assert sum(line["route"] == "model_ready" and line["status"] == 200 for line in lines) >= 40, lines[-3:]
    status, headers, body = server.request("GET", "/metrics")  # one replica's own registry, Prometheus text
    assert status == 200 and headers.get(REPLICA) in seen and b"edgecnn_requests_total" in body


def test_a_killed_replica_loses_no_request_silently_and_the_service_recovers(server, predictor, graph):
    expected = predictor.logits(graph)
    outcomes: list[tuple[int, int, str | None]] = []  # (image, status, replica)
    stop = threading.Event()
    wrong: list = []  # answers that differ from the Predictor's: must stay empty
    unclean: list = []  # failures that are not edgecnn's retryable 503: must stay empty

    def client(offset: int) -> None:
        i = offset
        while not stop.is_set():
            x = graph[i % 64 : i % 64 + 1]
            status, headers, body = server.request("POST", f"/v2/models/{MODEL}/infer", _json(x))
            outcomes.append((i, status, headers.get(REPLICA)))
            if status == 200:  # an answer must be the right one
                logits = np.array(json.loads(body)["outputs"][0]["data"], np.float32)
                if not np.allclose(logits, expected[i % 64], atol=1e-5, rtol=0):
                    wrong.append((i, logits))
            elif not (status == 503 and headers.get("retry-after") == "1" and json.loads(body or b"{}").get("error")):
                unclean.append((status, headers, body[:300]))
            i += 7

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    victims = _replicas(server)
    assert len(victims) == 2, victims
    os.kill(victims[0], signal.SIGKILL)
    killed_at = len(outcomes)
    time.sleep(12)
    stop.set()
    for thread in threads:
        thread.join(60)
    assert not wrong and not unclean, (wrong, unclean)
    after = outcomes[killed_at:]
    failed = [status for _, status, _ in after if status != 200]
    assert set(failed) <= {503}, failed  # what the dead replica held: edgecnn's retryable 503, never a silent loss
    assert len(failed) <= 6 * 2, failed  # at most what was in flight on the dead replica
    assert sum(status == 200 for _, status, _ in after[-30:]) == 30  # answering again
    deadline = time.monotonic() + 120  # Ray starts a replacement: two replicas again, one of them new
    while len(_replicas(server)) < 2 and time.monotonic() < deadline:
        time.sleep(1)
    assert victims[0] not in _replicas(server) and len(_replicas(server)) == 2


def _replicas(server) -> list[int]:
    return session_processes("ray::ServeReplica:edgecnn", server.process.pid)


def _json(x: np.ndarray) -> bytes:
    return json.dumps(_infer_body(x)).encode()


_DRIVER = """
import sys, time
from edgecnn.cluster.ray_session import ray_cluster
from edgecnn.cluster.serving import build_app
from edgecnn.serve.server import bind

with bind("127.0.0.1", 0) as probe:
    port = probe.getsockname()[1]
with ray_cluster(None, say=print):
    from ray import serve

    serve.start(http_options={"host": "127.0.0.1", "port": port})
    app = build_app({"models": "zoo:keras_same", "batching": "serve", "backend": "onnxruntime", "max_delay_ms": "20"})
    serve.run(app, name="edgecnn", route_prefix="/")
    print("READY", port, flush=True)
    sys.stdin.read()  # until the test closes it (or dies): then the cluster stops
    serve.shutdown()
"""


def test_build_app_for_serve_run_batches_with_serve_batch_and_answers_as_the_predictor(predictor, graph):
    """Ray's own entry point (what `serve run edgecnn.cluster.serving:build_app` calls), with Ray Serve's
    @serve.batch in the replica: requests sent together are batched, every answer the Predictor's."""
    process = subprocess.Popen(
        [sys.executable, "-c", _DRIVER],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        line = ""
        deadline = time.monotonic() + 240
        while not line.startswith("READY") and time.monotonic() < deadline and process.poll() is None:
            line = process.stdout.readline()
        assert line.startswith("READY"), line
        url = f"127.0.0.1:{line.split()[1]}"
        client = triton.InferenceServerClient(url, concurrency=16)
        pending = []
        for i in range(32):
            tensor = triton.InferInput("input", [1, *graph.shape[1:]], "FP32")
            tensor.set_data_from_numpy(graph[i : i + 1], binary_data=True)
            pending.append(client.async_infer(MODEL, [tensor]))
        for i, answer in enumerate(pending):
            logits = answer.get_result().as_numpy("logits")
            np.testing.assert_allclose(logits, predictor.logits(graph[i : i + 1]), atol=1e-5, rtol=0)
        metrics = urllib.request.urlopen(f"http://{url}/metrics", timeout=30).read().decode()  # the replica's own
        calls = sum(float(m.split()[-1]) for m in metrics.splitlines() if m.startswith("edgecnn_batch_size_count"))
        assert 0 < calls < 32, metrics  # fewer model calls than requests: they were batched
    finally:
        process.stdin.close()
        try:
            process.wait(120)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
