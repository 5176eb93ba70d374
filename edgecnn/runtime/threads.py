"""The thread policy: the intra-op threads (and, on onnxruntime, the spinning) a model gets when its caller
names none. Both the session policy (:mod:`edgecnn.runtime.session`) and the backends
(:mod:`edgecnn.runtime.backends`, which re-exports these names) read it from here."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["THREAD_POLICY", "ThreadPolicy", "default_spinning", "default_threads"]


@dataclass(frozen=True)
class ThreadPolicy:
    """What a model gets when its caller names no threads (and, on onnxruntime, no spinning)."""

    threads: int | None  # intra-op threads; None: the backend's own default (one per physical core)
    spinning: bool | None  # onnxruntime's idle workers busy-wait; None: not a switch this backend has


# Chosen from tools/bench_threads.py's sweep (BENCHMARKS.md, "Threads": keras_same and convnet5, fp32 and
# int8, batch 1 and 64, idle and beside a busy core, each configuration alone in its own process) as the
# one whose worst case is least bad: onnxruntime one thread per physical core, spinning; OpenVINO its own
# default (all cores). The figures behind the choice are in that section.
THREAD_POLICY = {"onnxruntime": ThreadPolicy(None, True), "openvino": ThreadPolicy(None, None)}


def default_threads(backend: str) -> int | None:
    """The intra-op threads a model on ``backend`` gets when the caller names none (THREAD_POLICY)."""
    return THREAD_POLICY[backend].threads


def default_spinning() -> bool:
    """Whether onnxruntime's idle worker threads busy-wait when the caller does not say (THREAD_POLICY)."""
    return bool(THREAD_POLICY["onnxruntime"].spinning)
