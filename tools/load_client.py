"""The load generator of tools/load_test.py: N closed-loop clients in one asyncio process, each on its own
keep-alive HTTP/1.1 connection, sending precomputed requests (real test images) and checking every answer
against the Predictor's for the same image. Kept minimal so that on a 2-core box the load it makes costs
less CPU than the server it measures (a client library would spend more per request than the server).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Request", "Outcome", "drive", "infer_checker", "classify_checker"]

TIMEOUT = 30.0  # seconds one request may take before it counts as lost


@dataclass(frozen=True)
class Request:
    raw: bytes  # the whole HTTP request: request line, headers, body
    check: Callable[[dict[str, str], bytes], bool]  # does the answer equal the Predictor's?


@dataclass
class Outcome:
    sent: int = 0
    answered: int = 0
    errors: int = 0  # answered with a status other than 200
    wrong: int = 0  # answered 200 with another answer than the Predictor's
    latencies: list[float] = field(default_factory=list)  # seconds, of the 200s
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return self.sent - self.answered


def http_request(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def infer_checker(expected: np.ndarray) -> Callable[[dict[str, str], bytes], bool]:
    """The logits output (binary, first) has the Predictor's top class and lies within 1e-4 of its logits."""

    def check(headers: dict[str, str], body: bytes) -> bool:
        length = int(headers["inference-header-content-length"])
        outputs = json.loads(body[:length])["outputs"]
        offset = length
        for output in outputs:
            size = output["parameters"]["binary_data_size"]
            if output["name"] == "logits":
                logits = np.frombuffer(body, np.float32, size // 4, offset)
                return int(logits.argmax()) == int(expected.argmax()) and np.abs(logits - expected).max() <= 1e-4
            offset += size
        return False

    return check


def classify_checker(label: str) -> Callable[[dict[str, str], bytes], bool]:
    def check(_headers: dict[str, str], body: bytes) -> bool:
        return json.loads(body)["predictions"][0]["label"] == label

    return check


async def drive(port: int, requests: list[Request], clients: int, seconds: float) -> Outcome:
    """``clients`` connections sending ``requests`` (cycled, each client from its own offset) for ``seconds``."""
    outcome = Outcome()
    deadline = time.perf_counter() + seconds
    await asyncio.gather(*(_client(port, requests, i, clients, deadline, outcome) for i in range(clients)))
    return outcome


async def _client(port: int, requests: list[Request], first: int, step: int, deadline: float, out: Outcome) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    index = first
    try:
        while time.perf_counter() < deadline:
            request = requests[index % len(requests)]
            index += step
            out.sent += 1
            started = time.perf_counter()
            writer.write(request.raw)
            try:
                status, headers, body = await asyncio.wait_for(_response(reader), TIMEOUT)
            except (TimeoutError, OSError, asyncio.IncompleteReadError):
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            elapsed = time.perf_counter() - started
            out.answered += 1
            out.statuses[status] = out.statuses.get(status, 0) + 1
            if status != 200:
                out.errors += 1
            elif not request.check(headers, body):
                out.wrong += 1
            else:
                out.latencies.append(elapsed)
    finally:
        writer.close()


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body
