"""Running the server: the socket, uvicorn, the access log, the token file, and stopping well.

The socket is bound here before uvicorn starts, so a taken port is one clear error (and ``--port 0`` takes any
free port, announced on stderr). SIGTERM (and Ctrl-C) stop accepting, let the requests in flight finish —
their batches included — for up to ``drain_seconds``, then exit 0; uvicorn by itself would re-raise the
signal after draining and end with status -15, which a supervisor reads as a crash. Requests cut at the
drain's deadline make the exit status 1. ``max_requests`` and ``stop_after`` stop the server the same way.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import uvicorn

from edgecnn.config import ServeConfig
from edgecnn.errors import ConfigError, EdgeCNNError, describe
from edgecnn.serve.app import create_app
from edgecnn.serve.gate import ACCESS_LOGGER
from edgecnn.serve.metrics import Metrics
from edgecnn.serve.models import ServedModel

__all__ = ["read_token", "bind", "run_server"]

BACKLOG = 2048  # connections the kernel queues while the event loop is busy: a burst of clients, not refusals


def read_token(path: str) -> str:
    """The bearer token in ``path`` (surrounding whitespace dropped); an empty or unreadable file is refused."""
    try:
        with open(path, encoding="utf-8") as file:
            token = file.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the token file {path}: {describe(exc)}") from exc
    if not token or any(c.isspace() for c in token):
        raise ConfigError(f"the token file {path} must hold one token: no spaces or line breaks inside, not empty")
    return token


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: a free port), or a ConfigError naming why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}: {describe(exc)}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or describe(exc)} (pick another --port, 0: any free one)"
        ) from exc
    sock.set_inheritable(False)
    return sock


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, *, stop_after: float | None, announce: Callable[[], None]) -> None:
        super().__init__(config)
        self._deadline = None if stop_after is None else time.monotonic() + stop_after
        self._announce = announce

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGTERM and SIGINT start the drain; unlike uvicorn's own, the signal is not raised again after it."""
        handled = (signal.SIGTERM, signal.SIGINT)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._announce()

    async def on_tick(self, counter: int) -> bool:
        if self._deadline is not None and time.monotonic() >= self._deadline:
            return True
        return await super().on_tick(counter)


def run_server(
    models: Sequence[ServedModel],
    config: ServeConfig,
    *,
    metrics: Metrics,
    token: str | None,
    say: Callable[[str], None],
) -> None:
    """Serve ``models`` until a signal, ``max_requests`` or ``stop_after``; returns once drained."""
    sock = bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    app = create_app(models, config, metrics=metrics, token=token)
    settings = _uvicorn_settings(app, config)
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    names = ", ".join(f"{m.name} ({m.predictor.backend} {m.predictor.precision})" for m in models)

    def announce() -> None:
        for model in models:
            say(f"{model.name}: {model.predictor.backend} {model.predictor.precision}, {model.predictor.engine.origin}")
        say(f"serving {names} at {url}/v2 (SIGTERM or Ctrl-C drains and stops)")

    server = _Server(settings, stop_after=config.stop_after, announce=announce)
    # the models and the app live as long as the process: the collector need not walk them again (its full
    # passes over them were the tail of the latency under load)
    gc.collect()
    gc.freeze()
    with sock, _access_log(config.access_log):
        server.run(sockets=[sock])
    if not server.started:
        raise EdgeCNNError(f"the server at {url} did not start (see the lines above)")
    if app.cut:
        raise EdgeCNNError(
            f"{app.cut} request(s) were cut after the {config.drain_seconds:g} s drain (--drain-seconds)"
        )
    say(f"stopped after {app.answered} request(s)")


def _uvicorn_settings(app: Any, config: ServeConfig) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_config=None,  # keep the process's logging; uvicorn's errors still reach stderr
        log_level="warning",
        access_log=False,  # ours is structured (gate.py)
        lifespan="on",
        timeout_graceful_shutdown=config.drain_seconds,
        limit_max_requests=config.max_requests,
        server_header=False,
    )


@contextlib.contextmanager
def _access_log(destination: str) -> Iterator[None]:
    """One JSON line per request to stderr ("-"), a file (appended), or nowhere ("off")."""
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.propagate = False
    if destination == "off":
        logger.setLevel(logging.WARNING)
        yield
        return
    handler: logging.Handler
    handler = logging.StreamHandler(sys.stderr) if destination == "-" else _file_handler(destination)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


def _file_handler(path: str) -> logging.Handler:
    try:
        return logging.FileHandler(os.fspath(path), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the access log {path}: {describe(exc)}") from exc
