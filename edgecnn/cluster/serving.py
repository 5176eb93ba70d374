"""``edgecnn serve --engine ray``: the same server as one process, as a Ray Serve deployment.

Each replica is a Ray actor holding the whole single-process application — the Starlette routes behind the
Gate (token, access log, metrics), the models and each model's own dynamic batcher — as the deployment's ASGI
ingress (``serve.ingress`` with a builder the replica runs), so every route, limit and error is the one
``edgecnn serve`` has. Ray's proxy spreads requests over the replicas; Ray restarts a replica that dies.

The model files travel with the deployment (their bytes, checked by SHA-256), so a replica on another node needs
no shared disk; each replica writes them once into its node's cache (``$EDGECNN_CACHE`` or the user cache dir,
``ray-models/SHA256.onnx``) and loads them from there. Every response says which replica answered in an
``edgecnn-replica`` header. ``/metrics`` is the answering replica's own registry (Ray's proxy picks the replica;
Ray's metrics, aggregated per node, are beside it on each node's metrics export port).

For Ray's own tooling: ``serve run edgecnn.cluster.serving:build_app models=a.onnx,b=zoo:keras_same
replicas=2`` (or the same arguments in a Serve config file's ``args``) deploys the same application.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.cluster.proxy import REPLICA_HEADER
from edgecnn.cluster.ray_session import LOOPBACK
from edgecnn.config import ClusterConfig, ServeConfig, config_from_dict
from edgecnn.errors import ConfigError
from edgecnn.files import atomic_path

__all__ = ["APP_NAME", "ShippedModel", "ship_models", "serve_application", "build_app"]

APP_NAME = "edgecnn"  # the Serve application's name, routed at "/"
_LOGS = contextlib.ExitStack()  # a replica's log handlers: open as long as its process


@dataclass(frozen=True)
class ShippedModel:
    """A served model as it travels to the replicas: its name, its file's name, bytes and SHA-256."""

    name: str
    filename: str
    data: bytes
    sha256: str

    def materialize(self, cache: Path) -> str:
        """``NAME=PATH`` of this model written (once, atomically) into ``cache``."""
        path = cache / f"{self.sha256}.onnx"
        if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != self.sha256:
            with atomic_path(path) as tmp:
                tmp.write_bytes(self.data)
        return f"{self.name}={path}"


def ship_models(specs: Sequence[str], *, zoo_dir: str | None) -> list[ShippedModel]:
    """Each spec (file, zoo:NAME, NAME=either) named as `edgecnn serve` names it, read for the replicas."""
    from edgecnn.runtime.zoo import is_zoo_spec, resolve_zoo
    from edgecnn.serve.models import model_name

    shipped = []
    for spec in specs:
        name, source = model_name(spec)
        path = resolve_zoo(source, zoo_dir) if is_zoo_spec(source) else Path(source)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the model {path}: {exc.strerror or exc}") from exc
        shipped.append(ShippedModel(name, path.name, data, hashlib.sha256(data).hexdigest()))
    return shipped


def _replica_app(models: Sequence[ShippedModel], config: ServeConfig, token: str | None, batching: str) -> Any:
    """The single-process application, built inside a replica (the builder Ray runs there); with ``batching``
    "serve", each model batched by Ray Serve's ``@serve.batch`` instead of edgecnn's batcher."""
    from ray import serve

    from edgecnn.runtime.tune_cache import cache_dir
    from edgecnn.serve.app import create_app
    from edgecnn.serve.metrics import Metrics
    from edgecnn.serve.models import load_models
    from edgecnn.serve.server import access_log_to, error_log_to_stderr

    _keep_to_loopback()
    cache = cache_dir() / "ray-models"
    specs = [model.materialize(cache) for model in models]
    metrics = Metrics()
    # the access log and the one-line faults, as `edgecnn serve` writes them, for the replica's lifetime
    _LOGS.enter_context(access_log_to(config.access_log))
    _LOGS.enter_context(error_log_to_stderr())
    served = load_models(specs, config, observe=metrics.observer)
    if batching == "serve":
        from edgecnn.cluster.ray_batching import ServeBatcher

        for model in served:
            model.batcher = ServeBatcher(model.batcher, model.call, metrics.observer(model.name))
    replica = serve.get_replica_context().replica_id.unique_id
    return _Labelled(create_app(served, config, metrics=metrics, token=token), replica.encode())


def _keep_to_loopback() -> None:
    """On a node whose address is 127.0.0.1 (the cluster edgecnn starts), keep the replica's own gRPC server (Ray
    Serve's inter-deployment calls, which this application does not make) on the loopback too: Ray Serve binds it
    to every interface ("[::]:0") whatever the node's address. Only that call's address is changed, and only on
    such a node; a Ray without that call is left as it is."""
    import ray
    import ray.serve._private.replica as replica_module

    bind = getattr(replica_module, "add_port_to_grpc_server", None)
    if bind is None or ray.util.get_node_ip_address() != LOOPBACK:
        return

    def on_loopback(server: Any, address: str) -> Any:
        return bind(server, LOOPBACK + address[4:] if address.startswith("[::]:") else address)

    replica_module.add_port_to_grpc_server = on_loopback


class _Labelled:
    """An ASGI app whose every response names the replica that made it."""

    def __init__(self, app: Any, replica: bytes) -> None:
        self.app, self.replica = app, replica

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def labelled(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (REPLICA_HEADER, self.replica)]}
            await send(message)

        await self.app(scope, receive, labelled)


def serve_application(
    models: Sequence[ShippedModel],
    config: ServeConfig,
    cluster: ClusterConfig,
    *,
    token: str | None,
    batching: str = "edgecnn",
) -> Any:
    """The Ray Serve application: one deployment of ``cluster.replicas`` replicas (or autoscaling up to
    ``cluster.max_replicas``), each the single-process server over ``models``, batching with edgecnn's batcher
    or (``batching="serve"``) Ray Serve's ``@serve.batch`` (cluster/ray_batching.py)."""
    from ray import serve

    from edgecnn.cluster.ray_batching import BATCHINGS

    if batching not in BATCHINGS:
        raise ConfigError(f"batching must be one of {', '.join(BATCHINGS)} (got {batching!r})")

    def build() -> Any:  # runs in each replica
        return _replica_app(models, config, token, batching)

    deployment = serve.deployment(serve.ingress(build)()).options(
        name=APP_NAME,
        # each replica's batcher bounds its own queue (503 beyond): Ray must not hold requests back first
        max_ongoing_requests=max(8, config.queue),
        graceful_shutdown_timeout_s=config.drain_timeout,
        graceful_shutdown_wait_loop_s=0.5,
        ray_actor_options={"num_cpus": config.threads or 1},
        **_scaling(cluster, config),
    )
    return deployment.bind()


def _scaling(cluster: ClusterConfig, config: ServeConfig) -> dict[str, Any]:
    """A fixed count of replicas, or an autoscaling range that adds one per half batch of requests in flight."""
    if cluster.max_replicas is None:
        return {"num_replicas": cluster.replicas}
    return {
        "num_replicas": "auto",
        "autoscaling_config": {
            "min_replicas": cluster.replicas,
            "max_replicas": cluster.max_replicas,
            "target_ongoing_requests": max(2, config.max_batch // 2),
        },
    }


def build_app(args: Mapping[str, str]) -> Any:
    """Ray's application builder: ``serve run edgecnn.cluster.serving:build_app models=SPEC[,SPEC…] [replicas=N]
    [max_replicas=M] [batching=edgecnn|serve] [zoo_dir=D] [token_file=F] [any ServeConfig field=value]``."""
    from edgecnn.serve.server import read_token

    options = dict(args)
    specs = [spec for spec in options.pop("models", "").split(",") if spec]
    if not specs:
        raise ConfigError("build_app needs models=SPEC[,SPEC…] (files, zoo:NAME or NAME=either)")
    zoo_dir, batching = options.pop("zoo_dir", None), options.pop("batching", "edgecnn")
    scale = {k: options.pop(k) for k in ("replicas", "max_replicas") if k in options}
    cluster = config_from_dict(ClusterConfig, {"engine": "ray", **{k: int(v) for k, v in scale.items()}})
    config = config_from_dict(ServeConfig, _typed(options))
    token = read_token(config.token_file) if config.token_file else None
    return serve_application(ship_models(specs, zoo_dir=zoo_dir), config, cluster, token=token, batching=batching)


def _typed(options: Mapping[str, str]) -> dict[str, Any]:
    """``key=value`` strings as ServeConfig's field types (Serve's CLI passes strings)."""
    kinds = {field.name: str(field.type).split(" | ")[0] for field in dataclasses.fields(ServeConfig)}
    unknown = sorted(set(options) - set(kinds))
    if unknown:
        raise ConfigError(f"build_app does not know {', '.join(unknown)} (ServeConfig fields, models, replicas)")
    convert = {"int": int, "float": float, "str": str}
    return {key: convert[kinds[key]](value) for key, value in options.items() if value != ""}
