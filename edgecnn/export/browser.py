"""A web bundle's self-test in a real browser: Chromium, headless, opens ``index.html?selftest=1`` from a static
server on 127.0.0.1 (a free port, stopped when the answer came or the time ran out), and the page POSTs its
answers back to that server. What the page requested is kept, so a caller can see it loaded every file shipped."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.errors import TargetError

__all__ = ["HEADLESS", "SelfTest", "chromium", "browser_selftest"]

_WAIT = 120.0  # seconds for the page to load onnxruntime-web, the model and answer every sample
# headless, as root in a container: no sandbox (it needs user namespaces), no GPU, and /tmp instead of a small
# /dev/shm (Docker's 64 MB default makes Chromium crash on larger pages)
HEADLESS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run")


@dataclass
class SelfTest:
    """The page's answers ({file: {label, probability, ms}}), its timing of the model call (p50_ms, p90_ms, runs)
    and the requests it made (method, path, status)."""

    answers: dict[str, Any]
    timing: dict[str, Any]
    requests: list[tuple[str, str, int]] = field(default_factory=list)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
        ".wasm": "application/wasm",
    }

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        self.server.requests.append((self.command, self.path.split("?")[0], int(code)))  # type: ignore[attr-defined]

    def log_message(self, *args: Any) -> None:  # no access log on stderr
        pass

    def do_POST(self) -> None:
        self.server.answer = self.rfile.read(int(self.headers["Content-Length"])).decode()  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()
        self.server.answered.set()  # type: ignore[attr-defined]


def browser_selftest(folder: str | Path, *, wait: float = _WAIT) -> SelfTest:
    """Serve ``folder`` on 127.0.0.1, let headless Chromium run its self-test, return what the page answered."""
    browser_path = chromium()
    if browser_path is None:
        raise TargetError("Chromium is not installed: tools/setup_browser.sh (Debian: apt-get install chromium)")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(folder)))
    server.requests, server.answered, server.answer = [], threading.Event(), None  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html?selftest=1&report=/selftest"
    command = [browser_path, *HEADLESS, url]
    browser = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not server.answered.wait(wait):  # type: ignore[attr-defined]
            raise TargetError(f"the page in {folder} did not answer its self-test within {wait:g} s")
    finally:
        browser.kill()
        browser.wait(30)
        server.shutdown()
        server.server_close()
    posted = json.loads(server.answer)  # type: ignore[attr-defined]
    return SelfTest(posted["answers"], posted.get("timing", {}), list(server.requests))  # type: ignore[attr-defined]
