"""The Ray cluster a command runs on: one joined at ``--address``, or one started here for the command alone.

A cluster started here is a head node on 127.0.0.1 (its GCS, raylet, object store and workers listen on the
loopback only; no dashboard), sized to this machine's cores, and shut down when the command ends, however it
ends: Ray's own processes share the fate of the command that started them. Joining a cluster leaves it running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from edgecnn.errors import ClusterError, describe

__all__ = ["LOOPBACK", "Cluster", "ray_cluster"]

LOOPBACK = "127.0.0.1"
# No usage reports; and for a cluster started here, Ray's single-machine mode: with it Ray takes 127.0.0.1 as the
# node's address, and its gRPC servers (GCS, raylet, workers) then listen on the loopback only (without it they
# listen on every interface). Read when ray is first imported, so set before that.
_QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}
_LOCAL_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


@dataclass(frozen=True)
class Cluster:
    """What the command runs on: ``started`` (here, for this command) or joined; the seconds it took."""

    address: str
    started: bool
    seconds: float
    cpus: float

    def describe(self) -> str:
        how = "started a local Ray cluster on" if self.started else "joined the Ray cluster at"
        return f"{how} {self.address} ({self.cpus:g} CPUs) in {self.seconds:.1f} s"


@contextlib.contextmanager
def ray_cluster(address: str | None, *, say: Callable[[str], None]) -> Iterator[Cluster]:
    """Join ``address`` or start a cluster here; shut the connection (and a cluster started here) down after."""
    import sys

    if "ray" in sys.modules and not address:
        raise ClusterError("ray was imported before edgecnn could start a loopback-only cluster: import it later")
    for name, value in {**_QUIET_ENV, **({} if address else _LOCAL_ENV)}.items():
        os.environ[name] = value
    import ray

    if ray.is_initialized():
        raise ClusterError("Ray is already initialised in this process: edgecnn joins or starts its own cluster")
    started = time.perf_counter()
    try:
        if address:
            context = ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            context = ray.init(
                address="local",  # never an existing cluster found by chance: --address says when to join one
                _node_ip_address=LOOPBACK,
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=False,
                num_cpus=os.cpu_count(),
            )
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        where = f"join the Ray cluster at {address}" if address else "start a local Ray cluster"
        raise ClusterError(f"cannot {where}: {describe(exc)}") from exc
    try:
        cluster = Cluster(
            address=context.address_info.get("gcs_address") or address or LOOPBACK,
            started=not address,
            seconds=time.perf_counter() - started,
            cpus=float(ray.cluster_resources().get("CPU", 0)),
        )
        say(cluster.describe())
        yield cluster
    finally:
        ray.shutdown()
