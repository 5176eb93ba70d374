"""``edgecnn serve``: models over HTTP with the Open Inference Protocol (``pip install 'edgecnn[serve]'``)."""

from __future__ import annotations

import ipaddress
from typing import Any

import click

from edgecnn.cli.options import config_from_options, config_options
from edgecnn.cli.output import warn
from edgecnn.cli.requires import require
from edgecnn.cli.zoo import zoo_dir_option
from edgecnn.config import ENGINES, PROVIDERS, ClusterConfig, ServeConfig
from edgecnn.runtime.backends import BACKENDS

__all__ = ["serve"]

SERVE_HELP = {
    "host": "Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface, with --token-file).",
    "port": "Port to listen on (0: any free one, announced on stderr).",
    "max_batch": "Images per model call when requests are batched (1: no batching).",
    "max_delay_ms": "Longest a request waits for others to share its model call.",
    "queue": "Images waiting per model before requests get 503 and Retry-After.",
    "provider": "onnxruntime's execution provider, chosen as the Predictor does.",
    "backend": "What runs each model (auto: what the file records, else onnxruntime).",
    "threads": "Intra-op threads per model (1 leaves the other cores to the event loop and the clients).",
    "token_file": "File holding a bearer token every route but /v2/health needs.",
    "max_body_bytes": "Largest request body, after decompression (413 beyond).",
    "max_images": "Most images in one request (413 beyond).",
    "max_pixels": "Most pixels in one uploaded image, read from its header before decoding.",
    "max_header_bytes": "Largest request head, request line and headers (431 beyond, before it is held).",
    "max_headers": "Most header lines in one request (431 beyond).",
    "max_url_bytes": "Longest request target, query included (414 beyond).",
    "call_timeout": "Longest one model call may run: stopped beyond, its requests answered 504.",
    "drain_timeout": "On SIGTERM, SIGINT or SIGHUP, how long requests taken get to be answered "
    "(then the rest are cut and the exit status is 1).",
    "access_log": "One JSON line per request: '-' for stderr, a file path, or 'off'.",
    "max_requests": "Stop (draining) after this many requests.",
    "stop_after": "Stop (draining) after this many seconds.",
}
CLUSTER_HELP = {
    "engine": "process: this process serves; ray: Ray Serve replicas of the same server (pip install 'edgecnn[ray]').",
    "address": "With --engine ray: the Ray cluster to join (auto, HOST:6379); default: start one on 127.0.0.1.",
    "replicas": "With --engine ray: replicas, each holding every model and its own batcher.",
    "max_replicas": "With --engine ray: autoscale from --replicas up to this many with the load.",
}


@click.command()
@click.argument("models", nargs=-1, required=True)
@config_options(ServeConfig, help=SERVE_HELP, choices={"provider": PROVIDERS, "backend": BACKENDS})
@config_options(ClusterConfig, help=CLUSTER_HELP, choices={"engine": ENGINES})
@zoo_dir_option
@click.option("--drain-seconds", type=float, hidden=True, help="The former name of --drain-timeout.")
def serve(models: tuple[str, ...], zoo_dir: str | None, drain_seconds: float | None, **options: Any) -> None:
    """Serve MODELS (files, zoo:NAME, or NAME=either) over HTTP with the Open Inference Protocol (KServe v2):
    /v2/models/NAME/infer for tritonclient, KServe's SDK or curl, /v2/models/NAME/classify for image files,
    /metrics for Prometheus. Requests are batched dynamically; SIGTERM drains them and exits 0. With --engine ray
    the same server runs as Ray Serve replicas (docs/ray.md)."""
    require("serve", "edgecnn serve")
    if drain_seconds is not None:  # the former name, still taken
        options["drain_timeout"] = drain_seconds
    cluster = config_from_options(ClusterConfig, {k: options.pop(k) for k in CLUSTER_HELP})
    config = config_from_options(ServeConfig, options)
    if cluster.engine == "ray":
        require("ray", "edgecnn serve --engine ray")
    from edgecnn.serve.metrics import Metrics
    from edgecnn.serve.models import load_models
    from edgecnn.serve.server import read_token, run_server

    token = read_token(config.token_file) if config.token_file else None
    if token is None and not _loopback(config.host):
        warn(f"listening on {config.host} without --token-file: anyone who can reach it can use it")
    if cluster.engine == "ray":
        from edgecnn.cluster.serve_run import run_on_ray

        run_on_ray(models, config, cluster, zoo_dir=zoo_dir, token=token, say=_say)
        return
    metrics = Metrics()
    served = load_models(models, config, zoo_dir=zoo_dir, observe=metrics.observer)
    run_server(served, config, metrics=metrics, token=token, say=_say)


def _say(line: str) -> None:
    click.echo(f"edgecnn: {line}", err=True)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
