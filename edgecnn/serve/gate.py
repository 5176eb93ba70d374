"""The door every HTTP request passes (a plain ASGI middleware around the app): the bearer token, then, once
answered, one access-log line and the request's metrics — for every answer, errors included: the requests the
connection refused before the app saw them (:meth:`Gate.refused`), a client gone mid-request (status 499, as
nginx logs it), and a genuine fault of the server (a 500, and one line on stderr, never a traceback). While the
server drains, a request that arrives gets 503 with ``Connection: close`` (those already begun are answered).

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
import math
import re
import time
import traceback
from collections.abc import Awaitable, Callable, Container, MutableMapping
from typing import Any

from edgecnn.serve.metrics import Metrics

__all__ = ["Gate", "route_of", "error_body", "ACCESS_LOGGER", "ERROR_LOGGER", "FAULT", "LOG_NOTE", "OPEN_ROUTES"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

ACCESS_LOGGER = "edgecnn.serve.access"
ERROR_LOGGER = "edgecnn.serve"  # the server's own faults: one line each
FAULT = "internal server error (the server's log has the cause)"  # a 500 that is not the model's failure
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
        self._log, self._errors = logging.getLogger(ACCESS_LOGGER), logging.getLogger(ERROR_LOGGER)
        self.answered = 0  # requests answered
        self.cut = 0  # requests cancelled unanswered (the drain's deadline passed)
        self.draining = False  # set when the drain begins: later requests get 503
        self.deadline = math.inf  # the drain's, on the event loop's clock

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # lifespan: startup and shutdown
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        route, model = route_of(scope["path"], self.models)
        scope[LOG_NOTE] = note = {"status": 500, "bytes_out": 0}  # the app adds bytes_in and error
        begun = False

        async def sending(message: Message) -> None:
            nonlocal begun
            if message["type"] == "http.response.start":
                note["status"], begun = message["status"], True
            elif message["type"] == "http.response.body":
                note["bytes_out"] += len(message.get("body", b""))
            await send(message)

        try:
            await self._answer(scope, receive, sending, route)
        except asyncio.CancelledError:
            self.cut += 1
            raise
        except Exception as exc:  # noqa: BLE001 - a fault of ours: one line and a 500, never a traceback spew
            note["error"] = "internal server error"
            self._errors.error(_fault_line(scope, exc))
            if not begun:
                await _send_error(sending, 500, FAULT)
        self.record(scope, route, model, note, time.perf_counter() - started)

    async def _answer(self, scope: Scope, receive: Any, send: Any, route: str) -> None:
        if self.draining:
            scope[LOG_NOTE]["error"] = "the server is shutting down"
            await _send_error(send, 503, "the server is shutting down: retry shortly", retry=True)
        elif self._expected is None or route in OPEN_ROUTES or self._authorized(scope):
            await self.app(scope, receive, send)
        else:
            await _unauthorized(send)

    def record(self, scope: Scope, route: str, model: str, note: dict[str, Any], elapsed: float) -> None:
        """One answered request: counted, measured and logged."""
        self.answered += 1
        self.metrics.record(route, model, note["status"], elapsed)
        if self._log.isEnabledFor(logging.INFO):
            self._log.info(_line(scope, route, model, note, elapsed))

    def refused(self, scope: Scope, status: int, error: str, bytes_in: int) -> None:
        """A request the connection answered itself (a head past the limits, malformed HTTP): logged and counted
        like any other. ``scope`` holds what was read of it: method, path, client."""
        route, model = route_of(scope.get("path", ""), self.models)
        note = {"status": status, "bytes_in": bytes_in, "bytes_out": 0, "error": error}
        self.record({"method": "", "path": "", **scope}, route, model, note, 0.0)

    def _authorized(self, scope: Scope) -> bool:
        header = next((value for key, value in scope["headers"] if key == b"authorization"), b"")
        scheme, _, given = header.partition(b" ")
        # compare_digest on the token's bytes: its time does not depend on where a guess goes wrong
        return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self._expected or b"")


def error_body(message: str) -> bytes:
    """The protocol's error body, ASCII whatever the message holds (a client's text may not encode as UTF-8)."""
    return json.dumps({"error": message}, separators=(",", ":")).encode()


async def _send_error(send: Send, status: int, text: str, *, retry: bool = False) -> None:
    body = error_body(text)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry:
        headers += [(b"retry-after", b"1"), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _unauthorized(send: Callable[[Message], Awaitable[None]]) -> None:
    body = b'{"error":"this server needs Authorization: Bearer <token> (edgecnn serve --token-file)"}'
    headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _fault_line(scope: Scope, exc: BaseException) -> str:
    """One line for a fault: the request, the exception, and where it was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    cause = f"{type(exc).__name__}: {str(exc)[:300]!a}{where}"
    return f"edgecnn: internal error on {scope['method']} {scope['path']!a}: {cause}"


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
