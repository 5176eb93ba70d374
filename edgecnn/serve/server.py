"""Running the server: the socket, uvicorn, the access log, the token file, and stopping well.

The socket is bound here before uvicorn starts, so a taken port is one clear error (and ``--port 0`` takes any
free port, announced on stderr). SIGTERM, SIGINT (Ctrl-C) and SIGHUP drain (drain.py): the requests taken are
answered — their batches included — for up to ``drain_timeout``, later ones refused cleanly, then exit 0;
uvicorn by itself would re-raise the signal after draining and end with status -15, which a supervisor reads as a
crash. SIGHUP drains too, a documented choice: there is no configuration to reload (a restart reads the models
again), and a server whose terminal closes should not die mid-request. Requests cut or model calls abandoned at
the drain's deadline make the exit status 1, with one line. ``max_requests`` and ``stop_after`` stop the
server the same way. The HTTP connection is wire.py's: uvicorn's httptools protocol with the head's limits.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence

import uvicorn

from edgecnn.config import ServeConfig
from edgecnn.errors import ConfigError, EdgeCNNError, describe
from edgecnn.serve.app import create_app
from edgecnn.serve.calls import Watchdog
from edgecnn.serve.drain import DRAIN_SIGNALS, SignalRelay, drain
from edgecnn.serve.gate import ACCESS_LOGGER, ERROR_LOGGER, Gate
from edgecnn.serve.metrics import Metrics
from edgecnn.serve.models import ServedModel
from edgecnn.serve.wire import HeadLimits, connection_class

__all__ = ["read_token", "bind", "run_server", "access_log_to", "error_log_to_stderr"]

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
    def __init__(
        self,
        config: uvicorn.Config,
        *,
        serve: ServeConfig,
        gate: Gate,
        listener: socket.socket,
        watchdog: Watchdog,
        announce: Callable[[], None],
    ) -> None:
        super().__init__(config)
        self._deadline = None if serve.stop_after is None else time.monotonic() + serve.stop_after
        self._drain = functools.partial(drain, self, gate, listener, stop_calls=watchdog.stop_all)
        self._watchdog, self._drain_timeout, self._announce = watchdog, serve.drain_timeout, announce
        self.abandoned = 0  # model calls still running at the drain's deadline

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGTERM, SIGINT and SIGHUP start the drain; unlike uvicorn's own, the signal is not raised again after."""
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in DRAIN_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            SignalRelay(lambda at: self._watchdog.drain_by(at + self._drain_timeout))
            self._announce()

    async def on_tick(self, counter: int) -> bool:
        if self._deadline is not None and time.monotonic() >= self._deadline:
            return True
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._watchdog.drain_by(time.monotonic() + self._drain_timeout)  # from the signal, if one came
        self.abandoned = await self._drain(max(0.0, self._watchdog.drain_deadline - time.monotonic()))
        if not self.force_exit:
            await self.lifespan.shutdown()


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

    server = _Server(
        settings, serve=config, gate=app, listener=sock, watchdog=models[0].call.watchdog, announce=announce
    )
    # the models and the app live as long as the process: the collector need not walk them again (its full
    # passes over them were the tail of the latency under load)
    gc.collect()
    gc.freeze()
    with sock, access_log_to(config.access_log), error_log_to_stderr():
        server.run(sockets=[sock])
    if not server.started:
        raise EdgeCNNError(f"the server at {url} did not start (see the lines above)")
    if app.cut or server.abandoned:
        raise EdgeCNNError(
            f"stopped after the {config.drain_timeout:g} s drain (--drain-timeout) with {app.cut} request(s) cut "
            f"and {server.abandoned} model call(s) abandoned; {app.answered} answered"
        )
    say(f"stopped after {app.answered} request(s)")


def _uvicorn_settings(app: Gate, config: ServeConfig) -> uvicorn.Config:
    limits = HeadLimits(config.max_header_bytes, config.max_headers, config.max_url_bytes)
    return uvicorn.Config(
        app,
        http=connection_class(app, limits),  # httptools with the head's limits (wire.py)
        ws="none",  # no upgrades: an Upgrade header is answered as a plain request
        log_config=None,  # keep the process's logging; uvicorn's errors still reach stderr
        log_level="warning",
        access_log=False,  # ours is structured (gate.py)
        lifespan="on",
        limit_max_requests=config.max_requests,
        server_header=False,
    )


@contextlib.contextmanager
def error_log_to_stderr() -> Iterator[None]:
    """The server's own faults (gate.py): one line each on stderr, already prefixed. python-multipart's warnings
    are a client's malformed form, answered 400 and logged as such: not repeated here."""
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    logger = logging.getLogger(ERROR_LOGGER)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)


@contextlib.contextmanager
def access_log_to(destination: str) -> Iterator[None]:
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
