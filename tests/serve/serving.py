"""The real server in a subprocess, as a device install runs it (torch, torchvision, onnx and matplotlib
unimportable): `edgecnn serve ... --port 0` on loopback, its port read from the line it announces, bounded by
--stop-after, its stderr (the access log) collected; stopped with SIGTERM at the end of the test."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from conftest import REPO, blocking_prelude

from edgecnn.data.builtin import read_builtin

_ANNOUNCED = re.compile(r"at http://127\.0\.0\.1:(\d+)/v2")
LIMIT_SECONDS = 120  # no test server outlives this, whatever the test does


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers with lower-case names, body) of one raw HTTP request; error statuses are returned."""
        req = urllib.request.Request(f"http://{self.url}{path}", data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, _lower(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, _lower(error.headers), error.read()

    def json(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        status, _, data = self.request(method, path, None if body is None else json.dumps(body).encode(), **kw)
        return status, json.loads(data)

    def access_log(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.lines) if line.startswith("{")]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout)
        time.sleep(0.05)  # the reader thread takes the last lines
        return code


def _lower(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


@contextlib.contextmanager
def running_server(
    *args: str, env: dict[str, str] | None = None, limit: float = LIMIT_SECONDS, start_timeout: float = 60
) -> Iterator[Server]:
    """``edgecnn serve ARGS`` on a free loopback port, ready when it says so (within ``start_timeout``), stopping
    by itself after ``limit`` seconds; SIGTERM afterwards. ``env``: added to this process's environment."""
    code = blocking_prelude() + "from edgecnn.cli import main; sys.argv[0] = 'edgecnn'; main()"
    command = [sys.executable, "-c", code, "serve", *args, "--host", "127.0.0.1", "--port", "0"]
    process = subprocess.Popen(
        [*command, "--stop-after", str(limit)],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=True,  # its own process group: whatever it starts (a Ray cluster) is stopped with it
    )
    lines: list[str] = []
    announced = threading.Event()
    threading.Thread(target=_read, args=(process, lines, announced), daemon=True).start()
    if not announced.wait(start_timeout) or not any(_ANNOUNCED.search(line) for line in lines):
        process.kill()
        process.wait()
        pytest.fail("the server did not start:\n" + "".join(lines))
    port = int(next(_ANNOUNCED.search(line)[1] for line in lines if _ANNOUNCED.search(line)))
    server = Server(process, port, lines)
    try:
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # anything of its group left behind


def _read(process: subprocess.Popen, lines: list[str], announced: threading.Event) -> None:
    for line in process.stderr:
        lines.append(line)
        if _ANNOUNCED.search(line):
            announced.set()
    announced.set()  # it ended without announcing


@functools.lru_cache(maxsize=1)
def fashion_test_images() -> tuple[np.ndarray, np.ndarray]:
    """Real Fashion-MNIST test images (uint8 N×28×28) and labels, read without torch."""
    data = read_builtin("fashion-mnist", "test")
    return data.images[:, 0], data.labels
