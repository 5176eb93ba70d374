"""Training in several processes, on PyTorch's own engine: ``torchrun`` (elastic launch, rendezvous, restarts)
starts the processes and sets their environment; this module reads it, opens the process group (gloo on CPUs,
NCCL on GPUs, with a timeout we choose instead of torch's 30 minutes) and gives the loop the few collective
operations it needs. One process (no torchrun) is world size 1: every function here is then a no-op.

The math stays one process's: every rank draws the same seeded order, each global batch of ``--batch-size``
images is split across the ranks by stride (rank r takes images r, r + W, …: DistributedSampler's sharding
applied batch by batch), and each rank's summed loss is scaled by W / (global batch size), so DDP's average
of the gradients is exactly the gradient of the global batch's mean loss — also for an uneven last batch.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as torch_dist

from edgecnn.errors import ConfigError, TrainingError, describe

__all__ = [
    "Dist",
    "ONE_PROCESS",
    "from_env",
    "process_group",
    "wrap_model",
    "all_reduce_sum",
    "gather_objects",
    "launch",
    "restarted",
    "PeerLost",
    "LAUNCHED",
    "PEER_LOST_EXIT",
    "root_cause",
]


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, metrics and plots."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def shard(self, indices: torch.Tensor) -> torch.Tensor:
        """This rank's share of a global batch: every world-th index from its rank on."""
        return indices[self.rank :: self.world] if self.active else indices


ONE_PROCESS = Dist()
PEER_LOST_EXIT = 75  # a process that only lost a peer exits with this under edgecnn's launcher (EX_TEMPFAIL)
LAUNCHED = "EDGECNN_LAUNCHED"  # set for the processes `edgecnn train --nproc-per-node` starts: it reports failures


class PeerLost(TrainingError):
    """Another process of the run died or stopped answering within the timeout."""


def from_env(environ: dict[str, str] | None = None) -> Dist:
    """The rank, world size and local rank torchrun set (RANK, WORLD_SIZE, LOCAL_RANK); none: one process."""
    env = os.environ if environ is None else environ
    try:
        values = {
            key: int(env.get(key, default)) for key, default in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0))
        }
    except ValueError as exc:
        raise ConfigError(f"RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers ({describe(exc)})") from exc
    if not 0 <= values["RANK"] < values["WORLD_SIZE"]:
        raise ConfigError(f"RANK {values['RANK']} does not fit WORLD_SIZE {values['WORLD_SIZE']}")
    return Dist(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])


def restarted(environ: dict[str, str] | None = None) -> bool:
    """Is this group a restart by torchrun (``--max-restarts``) after a worker failed?"""
    env = os.environ if environ is None else environ
    return env.get("TORCHELASTIC_RESTART_COUNT", "0") not in ("", "0")


@contextlib.contextmanager
def process_group(dist: Dist, device: torch.device, timeout: float) -> Iterator[None]:
    """The process group for the run (none with one process), torn down afterwards. A collective that waits
    longer than ``timeout`` seconds for a peer fails instead of hanging for torch's default 30 minutes."""
    if not dist.active or torch_dist.is_initialized():
        yield
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if "OMP_NUM_THREADS" not in os.environ:  # torchrun's CLI sets 1; its Python API does not: share the cores
        local = int(os.environ.get("LOCAL_WORLD_SIZE", dist.world))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(local, 1)))
    wait = datetime.timedelta(seconds=timeout)
    try:
        torch_dist.init_process_group(backend, timeout=wait, **_attempt_store(dist, wait))
    except (RuntimeError, ValueError) as exc:
        raise TrainingError(f"cannot join the process group ({backend}): {describe(exc)}") from exc
    try:
        yield
    except RuntimeError as exc:  # DDP's own collectives (in backward) fail as RuntimeErrors naming gloo/NCCL
        if isinstance(exc, PeerLost) or not _peer_failure(exc):
            raise
        raise PeerLost(f"rank {dist.rank}: a peer process is gone or timed out ({describe(exc)})") from exc
    finally:
        torch_dist.destroy_process_group()


def _peer_failure(exc: RuntimeError) -> bool:
    text = str(exc)
    return isinstance(exc, torch_dist.DistBackendError) or any(
        mark in text for mark in ("gloo", "NCCL", "Connection reset", "Connection closed", "imed out")
    )


def wrap_model(model: torch.nn.Module, device: torch.device, dist: Dist, *, sync_batchnorm: bool) -> torch.nn.Module:
    """What the loop calls forward on: the model itself in one process; in several, DDP around it (its
    BatchNorms first made global when ``sync_batchnorm``), which averages the gradients across the ranks."""
    if not dist.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    from edgecnn.training.syncbn import convert_batchnorm

    if sync_batchnorm:
        convert_batchnorm(model, device)
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _attempt_store(dist: Dist, wait: datetime.timedelta) -> dict[str, Any]:
    """Under torchrun's agent, the agent's store under a prefix of its own per restart. The agent's store
    outlives a failed group, and without a fresh prefix the restarted ranks read the dead ranks' addresses
    (gloo: "connectFullMesh failed ... Connection refused"). Elsewhere: torch's env:// as it is."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return {}
    agent = torch_dist.TCPStore(
        os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), dist.world, is_master=False, timeout=wait
    )
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    store = torch_dist.PrefixStore(f"edgecnn/attempt-{attempt}/", agent)
    return {"store": store, "rank": dist.rank, "world_size": dist.world}


def all_reduce_sum(tensor: torch.Tensor, dist: Dist) -> torch.Tensor:
    """``tensor`` summed over the ranks (in place); a lost peer is a TrainingError naming it, not a hang."""
    if dist.active:
        try:
            torch_dist.all_reduce(tensor)
        except (RuntimeError, torch_dist.DistBackendError) as exc:
            raise PeerLost(f"rank {dist.rank}: a peer process is gone or timed out ({describe(exc)})") from exc
    return tensor


def gather_objects(value: Any, dist: Dist) -> list[Any]:
    """Every rank's ``value``, in rank order (each rank's RNG states, for the checkpoint)."""
    if not dist.active:
        return [value]
    out: list[Any] = [None] * dist.world
    try:
        torch_dist.all_gather_object(out, value)
    except (RuntimeError, torch_dist.DistBackendError) as exc:
        raise TrainingError(f"rank {dist.rank}: a peer process is gone or timed out ({describe(exc)})") from exc
    return out


def root_cause(failures: Mapping[int, Any]) -> tuple[int, Any]:
    """The failed process that took the others down: one that died or failed on its own before a survivor that
    only lost its peer — one exiting PEER_LOST_EXIT, aborted by gloo (SIGABRT, "terminate called without an
    active exception") or stopped by the agent (SIGTERM) — and the earliest within each kind. torch's own
    choice is the earliest alone, but its timestamps are whole seconds: a tie went to the lowest rank, and
    named a survivor as the cause (seen: SIGABRT, SIGTERM)."""
    taken_down = (-signal.SIGABRT, -signal.SIGTERM)

    def kind(failure: Any) -> int:
        return 2 if failure.exitcode == PEER_LOST_EXIT else 1 if failure.exitcode in taken_down else 0

    return min(failures.items(), key=lambda item: (kind(item[1]), item[1].timestamp, item[0]))


def launch(nproc: int, argv: Sequence[str], *, max_restarts: int = 0) -> None:
    """``edgecnn train --nproc-per-node N``: torchrun's launcher (its Python API) on this machine, running
    ``python -m edgecnn ARGV`` in N processes; a failed group is a TrainingError naming the root cause."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if not logging.getLogger("edgecnn").isEnabledFor(logging.DEBUG):  # -v shows the agent's own log
        logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # the failure is our one line

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"edgecnn-{os.getpid()}",
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",  # this machine, any free port
        max_restarts=max_restarts,
        monitor_interval=0.5,
    )
    os.environ[LAUNCHED] = "1"  # the processes inherit it
    try:
        elastic_launch(config, sys.executable)("-m", "edgecnn", *argv)
    except ChildFailedError as exc:
        rank, failure = root_cause(exc.failures)
        raise TrainingError(
            f"training process {rank} failed ({failure.message or 'exit ' + str(failure.exitcode)})"
        ) from exc
