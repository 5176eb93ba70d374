"""In Ray Serve's HTTP proxy: a failure of Ray's own (a replica that died with the request, a deployment not
ready) answered as edgecnn answers failures — one JSON line, 503 with ``Retry-After`` — instead of Ray's plain
500 "Internal Server Error", which a client cannot tell from a model that failed on its input.

A response of edgecnn's own carries the ``edgecnn-replica`` header (cluster/serving.py) and passes unchanged,
its 500s included; only a 5xx without it (made by the proxy) is replaced. Ray loads this in the proxy through
``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=edgecnn.cluster.proxy:proxy_middlewares``, which
``edgecnn serve --engine ray`` sets for a cluster it starts (a cluster joined has its proxies already: set it
there when starting its nodes, docs/ray.md).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["CALLBACK", "REPLICA_HEADER", "RayFailures", "proxy_middlewares"]

CALLBACK = "edgecnn.cluster.proxy:proxy_middlewares"
REPLICA_HEADER = b"edgecnn-replica"
RETRY_BODY = json.dumps(
    {"error": "the replica serving this request stopped before answering (Ray Serve replaces it): retry"}
).encode()


def proxy_middlewares() -> list[Any]:
    """Ray's proxy callback: the middleware list its HTTP proxy wraps itself in."""
    from starlette.middleware import Middleware

    return [Middleware(RayFailures)]


class RayFailures:
    """Pure ASGI: a 5xx the proxy made itself, or no answer at all (Ray's proxy ends a request whose replica died
    without a response, leaving uvicorn to send a bare 500), becomes edgecnn's retryable 503."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = replaced = False

        async def sending(message: Any) -> None:
            nonlocal started, replaced
            if message["type"] == "http.response.start":
                started = True
                if _ray_failure(message):
                    replaced = True
                    await _retry_later(send)
                    return
            if not replaced:
                await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            if started:
                raise
        # the proxy lost the replica and ended without answering (or raised first): uvicorn would send a bare 500
        if not started:
            await _retry_later(send)


async def _retry_later(send: Any) -> None:
    headers = [(b"content-type", b"application/json"), (b"retry-after", b"1")]
    headers.append((b"content-length", str(len(RETRY_BODY)).encode()))
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": RETRY_BODY})


def _ray_failure(start: dict[str, Any]) -> bool:
    if start["status"] < 500:
        return False
    return not any(name.lower() == REPLICA_HEADER for name, _ in start.get("headers", []))
