"""Running ``edgecnn serve --engine ray``: the cluster, the deployment, the wait, and the drain.

The models are loaded here once first (a file that cannot serve fails before any cluster starts, and a backend
auto chooses is tuned once and cached for the replicas on this node). Ray Serve's proxy listens on ``--host`` and
``--port`` (0: a free one, picked here); the application is routed at ``/``. SIGTERM, SIGINT and SIGHUP, or
``--stop-after``, drain: the application is deleted the way Ray Serve stops a deployment gracefully — no new
requests reach the replicas, those taken are answered (their batches included) for up to ``--drain-timeout``,
then the replicas stop — and a cluster started here is shut down. ``--max-requests`` counts one process's
requests and is refused here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from edgecnn.cluster.proxy import CALLBACK
from edgecnn.cluster.ray_session import ray_cluster
from edgecnn.cluster.serving import APP_NAME, ShippedModel, serve_application, ship_models
from edgecnn.config import ClusterConfig, ServeConfig
from edgecnn.errors import ClusterError, ConfigError, describe

__all__ = ["run_on_ray"]

_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def run_on_ray(
    specs: Sequence[str],
    config: ServeConfig,
    cluster: ClusterConfig,
    *,
    zoo_dir: str | None,
    token: str | None,
    say: Callable[[str], None],
) -> None:
    """Serve ``specs`` on Ray Serve until a signal or ``stop_after``; returns once drained."""
    from edgecnn.serve.models import load_models
    from edgecnn.serve.server import bind

    if config.max_requests is not None:
        raise ConfigError("--max-requests counts one process's requests: with --engine ray use --stop-after")
    load_models(specs, config, zoo_dir=zoo_dir)  # every file checked (and auto tuned) before a cluster starts
    models = ship_models(specs, zoo_dir=zoo_dir)
    os.environ.setdefault("RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH", CALLBACK)  # a cluster started here: its proxy
    port = config.port
    if port == 0:
        with bind(config.host, 0) as probe:
            port = probe.getsockname()[1]
    with ray_cluster(cluster.address, say=say) as ray_cluster_, _stopping() as stop:
        from ray import serve

        logging.getLogger("ray.serve").setLevel(logging.WARNING)
        _deploy(serve, models, config, cluster, token=token, port=port, say=say)
        stop.wait(config.stop_after)
        say(f"draining (up to {config.drain_timeout:g} s)")
        serve.delete(APP_NAME)
        if ray_cluster_.started:
            serve.shutdown()
    say("stopped")


def _deploy(
    serve: Any,
    models: Sequence[ShippedModel],
    config: ServeConfig,
    cluster: ClusterConfig,
    *,
    token: str | None,
    port: int,
    say: Callable[[str], None],
) -> None:
    """Start Serve's proxy on ``--host``:``port`` and deploy the application at "/"; announce it when it is ready."""
    from ray.exceptions import RayError
    from ray.serve.exceptions import RayServeException

    started = time.perf_counter()
    try:
        serve.start(http_options={"host": config.host, "port": port})
        serve.run(
            serve_application(models, config, cluster, token=token),
            name=APP_NAME,
            route_prefix="/",
            blocking=False,
        )
    except (RuntimeError, ValueError, TimeoutError, RayError, RayServeException) as exc:
        raise ClusterError(f"Ray Serve could not deploy the models: {describe(exc)}") from exc
    url = f"http://{config.host if ':' not in config.host else f'[{config.host}]'}:{port}"
    count = f"{cluster.replicas}" + (f" to {cluster.max_replicas}" if cluster.max_replicas else "")
    say(f"deployed {count} replica(s) in {time.perf_counter() - started:.1f} s")
    names = ", ".join(model.name for model in models)
    say(f"serving {names} at {url}/v2 on Ray Serve (SIGTERM or Ctrl-C drains and stops)")


@contextlib.contextmanager
def _stopping() -> Iterator[threading.Event]:
    """An event set by SIGTERM, SIGINT or SIGHUP (installed after Ray's own, so ours decide)."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in _SIGNALS}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
