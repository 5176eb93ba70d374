"""The door every HTTP request passes (a plain ASGI middleware around the app): the bearer token, then, once
answered, one access-log line and the request's metrics.

With a token, every route but ``/v2/health/*`` needs ``Authorization: Bearer TOKEN``; the comparison takes
the same time however much of the token a client guessed (``hmac.compare_digest``), and neither the token
nor the header is ever logged. The access log is one JSON object per line: time, client, method, path,
route, model, status, bytes in and out, milliseconds; a failure's one-line error is added by the app.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Container, MutableMapping
from typing import Any

from edgecnn.serve.metrics import Metrics

__all__ = ["Gate", "route_of", "ACCESS_LOGGER", "LOG_NOTE", "OPEN_ROUTES"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

ACCESS_LOGGER = "edgecnn.serve.access"
LOG_NOTE = "edgecnn.log"  # the scope key of what the access log says of a request
OPEN_ROUTES = ("health_live", "health_ready")  # a load balancer's probes carry no token
_MODEL_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/[^/]+)?(?:/(ready|infer|classify))?")
_ROUTES = {"/v2/health/live": "health_live", "/v2/health/ready": "health_ready", "/v2": "server_metadata"}
_ROUTES |= {"/metrics": "metrics", "/v2/repository/index": "repository_index"}


def route_of(path: str, models: Container[str]) -> tuple[str, str]:
    """(route name, served model name or "") of a request path, for labels and the log."""
    if path in _ROUTES:
        return _ROUTES[path], ""
    match = _MODEL_PATH.fullmatch(path)
    if match is None:
        return "other", ""
    name = match[1] if match[1] in models else ""
    return (match[2] or "model_metadata") if match[2] != "ready" else "model_ready", name


class Gate:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, models: Container[str], token: str | None) -> None:
        self.app, self.metrics, self.models = app, metrics, models
        self._expected = token.encode() if token else None
        self._log = logging.getLogger(ACCESS_LOGGER)
        self.answered = 0  # requests answered
        self.cut = 0  # requests cancelled unanswered (the drain's deadline passed)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # lifespan: startup and shutdown
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        route, model = route_of(scope["path"], self.models)
        scope[LOG_NOTE] = note = {"status": 500, "bytes_out": 0}  # the app adds bytes_in and error

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                note["status"] = message["status"]
            elif message["type"] == "http.response.body":
                note["bytes_out"] += len(message.get("body", b""))
            await send(message)

        try:
            if self._expected is None or route in OPEN_ROUTES or self._authorized(scope):
                await self.app(scope, receive, sending)
            else:
                await _unauthorized(sending)
        except asyncio.CancelledError:
            self.cut += 1
            raise
        self.answered += 1
        elapsed = time.perf_counter() - started
        self.metrics.record(route, model, note["status"], elapsed)
        if self._log.isEnabledFor(logging.INFO):
            self._log.info(_line(scope, route, model, note, elapsed))

    def _authorized(self, scope: Scope) -> bool:
        header = next((value for key, value in scope["headers"] if key == b"authorization"), b"")
        scheme, _, given = header.partition(b" ")
        # compare_digest on the token's bytes: its time does not depend on where a guess goes wrong
        return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self._expected or b"")


async def _unauthorized(send: Callable[[Message], Awaitable[None]]) -> None:
    body = b'{"error":"this server needs Authorization: Bearer <token> (edgecnn serve --token-file)"}'
    headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _line(scope: Scope, route: str, model: str, note: dict[str, Any], elapsed: float) -> str:
    client = scope.get("client") or ("", 0)
    entry = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
        "client": f"{client[0]}:{client[1]}",
        "method": scope["method"],
        "path": scope["path"],
        "route": route,
        "model": model,
        "status": note["status"],
        "bytes_in": note.get("bytes_in", 0),
        "bytes_out": note["bytes_out"],
        "ms": round(elapsed * 1000, 3),
    }
    if "error" in note:
        entry["error"] = note["error"]
    return json.dumps(entry, separators=(",", ":"))
