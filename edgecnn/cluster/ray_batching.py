"""Ray Serve's own dynamic batching (``@serve.batch``) behind the interface of edgecnn's batcher, so a replica can
batch either way (``serve_application(..., batching="serve")``, ``serve run … batching=serve``) and the two can be
measured on the same server (tools/ray_bench.py; BENCHMARKS.md "Serving and batch prediction on Ray").

The differences are Ray's: ``@serve.batch`` counts requests, not images, in ``max_batch_size``; it waits up to
``batch_wait_timeout_s`` for a batch to fill whether or not more requests are coming; a batch whose model call
fails fails every request in it; and its model call runs on the replica's event loop, as Ray's examples do. The
queue bound (503 with Retry-After) is kept, so a replica never holds an unbounded backlog either way.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator

import numpy as np

from edgecnn.serve.batching import Batcher, BatchStats

__all__ = ["BATCHINGS", "ServeBatcher"]

Observer = Callable[[int, float], None]  # told of each model call: images, seconds
BATCHINGS = ("edgecnn", "serve")  # a replica's batcher: edgecnn's (serve/batching.py), or Ray Serve's @serve.batch


class ServeBatcher:
    """``run(x) -> scores`` for N×… inputs, called on requests merged by ``@serve.batch``."""

    def __init__(self, like: Batcher, run: Callable[[np.ndarray], np.ndarray], observe: Observer | None) -> None:
        """Batch as ``like`` is set to (max batch, max delay, queue bound), calling ``run``."""
        from ray import serve

        max_batch, max_delay = like.max_batch, like.max_delay
        self.max_batch, self.max_queue, self.stats = max_batch, like.max_queue, BatchStats()

        @serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=max_delay)
        async def batched(inputs: list[np.ndarray]) -> list[np.ndarray]:
            x = inputs[0] if len(inputs) == 1 else np.concatenate(inputs)
            started = time.perf_counter()
            scores = run(x)
            self.stats.record(len(x))
            if observe is not None:
                observe(len(x), time.perf_counter() - started)
            ends = np.cumsum([len(part) for part in inputs])
            return [scores[end - len(part) : end] for part, end in zip(inputs, ends, strict=True)]

        self._batched = batched

    def start(self) -> None:
        """Nothing to start: Ray's batch queue starts with its first request."""

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        yield  # @serve.batch does not look at what is on its way

    async def submit(self, x: np.ndarray) -> np.ndarray:
        self.stats.admit(len(x), self.max_queue)
        try:
            return await self._batched(x)
        finally:
            self.stats.queued_images -= len(x)

    async def stop(self, deadline: float = math.inf) -> None:
        """Nothing to drain here: Ray Serve's graceful shutdown waits for the requests a replica holds."""
