"""Dynamic batching, as Triton's dynamic batcher does it: requests wait at most ``max_delay`` seconds to be
grouped into one model call of up to ``max_batch`` images, and each gets its own rows back.

Unlike Triton's, a batch waits only while more is to be expected: another request is on its way (being read or
checked by the server, :meth:`Batcher.arriving`), or the previous batch was larger than this one is yet (its
clients are likely sending again). So a lone client never pays the delay — with one request in the whole
server, waiting would only add latency — while under steady load batches fill up to what the load holds.

The queue is bounded in images: a request that would take it past ``max_queue`` is refused at once
(:class:`QueueFull`, an HTTP 503 with Retry-After) instead of waiting behind an ever longer line. A short model
call (under INLINE_BELOW) runs on the event loop; a longer one in a worker thread, so the loop keeps accepting
and answering while it computes. When a merged call fails, each of its requests is run again alone, so only the
request that breaks the model gets the error (one bad input never fails its neighbours); the batcher then goes
on with the next batch. A call past ``limit`` seconds answers its requests :class:`CallTimeout` (504) together:
a time limit says nothing of which input is to blame, and retrying each alone could take the limit each time.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from edgecnn.errors import EdgeCNNError
from edgecnn.serve.calls import CallTimeout, ModelThread

__all__ = ["QueueFull", "BatchStats", "Batcher", "INLINE_BELOW"]

# A model call expected to take less than this runs on the event loop itself: handing it to a worker thread and
# back cost more server CPU than a small net's call takes (BENCHMARKS.md, "Serving: what runs on the event loop").
# Longer calls go to the model's thread, so health checks and uploads are never held that long; so do all the calls
# of a model that cannot be stopped (``terminable`` False): a stuck call must never hold the event loop.
INLINE_BELOW = 0.002


class QueueFull(EdgeCNNError):
    """The batcher's queue holds ``max_queue`` images already: come back later (HTTP 503)."""

    status = 503


@dataclass
class BatchStats:
    """What the batcher did, for /metrics: model calls by batch size, and the images waiting now."""

    batches: dict[int, int] = field(default_factory=dict)
    queued_images: int = 0

    def record(self, size: int) -> None:
        self.batches[size] = self.batches.get(size, 0) + 1

    def admit(self, images: int, limit: int) -> None:
        """Count ``images`` as waiting, or QueueFull if that would take the queue past ``limit``."""
        if self.queued_images + images > limit:
            raise QueueFull(f"the queue holds {self.queued_images} images (limit {limit}): retry shortly")
        self.queued_images += images


@dataclass
class _Waiting:
    x: np.ndarray
    future: asyncio.Future[np.ndarray]


class Batcher:
    """``run(x) -> scores`` for N×… inputs, called with requests merged along the batch axis.
    ``max_batch`` 1 turns batching off (each request one call; a request of more images runs alone, as any
    request larger than ``max_batch`` does); ``max_delay`` 0 merges only what is already waiting.
    ``observe(images, seconds)`` is told of every model call (for /metrics); ``limit``: seconds a call's waiters
    wait before a CallTimeout (None: no limit)."""

    def __init__(
        self,
        run: Callable[[np.ndarray], np.ndarray],
        *,
        max_batch: int,
        max_delay: float,
        max_queue: int,
        observe: Callable[[int, float], None] | None = None,
        limit: float | None = None,
        terminable: bool = True,
    ):
        self._run, self.max_batch, self.max_delay, self.max_queue = run, max_batch, max_delay, max_queue
        self._limit, self._terminable, self._thread = limit, terminable, ModelThread("batcher")
        self._observe = observe
        self._queue: asyncio.Queue[_Waiting] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._held: _Waiting | None = None  # arrived while a batch filled up, too big for it: opens the next
        self._arriving = 0  # requests being read and checked, to be submitted soon
        self._previous = 1  # images in the previous batch: what the next one may expect to gather
        self._per_image = math.inf  # seconds per image of the last model call (none yet: a thread for the first)
        self.stats = BatchStats()

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._serve())

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """Around reading and checking a request before its :meth:`submit`: batches wait for it (≤ max_delay)."""
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1

    async def submit(self, x: np.ndarray) -> np.ndarray:
        """The scores for ``x`` (N×…), computed in some batch; QueueFull when the queue has no room."""
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self.stats.admit(len(x), self.max_queue)
        await self._queue.put(_Waiting(x, future))
        return await future

    async def stop(self, deadline: float = math.inf) -> None:
        """Answer everything already queued (until the event loop's clock reaches ``deadline``), then stop."""
        loop = asyncio.get_running_loop()
        while self.stats.queued_images and self._worker is not None and not self._worker.done():
            if loop.time() >= deadline:
                break
            await asyncio.sleep(0.001)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        self._thread.close()

    async def _serve(self) -> None:
        while True:
            group = await self._gather()
            await self._answer(group)

    async def _gather(self) -> list[_Waiting]:
        """The first waiting request, then what waits or arrives within max_delay, up to max_batch images."""
        held, self._held = self._held, None
        group = [held or await self._queue.get()]
        count, loop = len(group[0].x), asyncio.get_running_loop()
        deadline = loop.time() + self.max_delay
        while count < self.max_batch:
            left = deadline - loop.time()
            expecting = self._arriving or count < self._previous
            if self._queue.empty() and (left <= 0 or not expecting):  # nothing (more) to wait for
                break
            try:
                item = self._queue.get_nowait() if left <= 0 else await asyncio.wait_for(self._queue.get(), left)
            except (TimeoutError, asyncio.QueueEmpty):
                break
            if count + len(item.x) > self.max_batch:  # would overflow: it opens the next batch instead
                self._held = item
                break
            group.append(item)
            count += len(item.x)
        self._previous = count
        return group

    async def _answer(self, group: list[_Waiting]) -> None:
        sizes = [len(w.x) for w in group]
        try:
            x = group[0].x if len(group) == 1 else np.concatenate([w.x for w in group])
            scores = await self._call(x)
        except Exception as exc:  # noqa: BLE001 - the model's failure is this batch's answer, not the server's end
            if len(group) == 1 or isinstance(exc, CallTimeout):
                for waiting in group:
                    _settle(waiting, error=exc)
            else:  # find the request that breaks the model: the others get their answers
                for waiting in group:
                    await self._answer([waiting])
                return
        else:
            start = 0
            for waiting, size in zip(group, sizes, strict=True):
                _settle(waiting, result=scores[start : start + size])
                start += size
        self.stats.queued_images -= sum(sizes)

    async def _call(self, x: np.ndarray) -> np.ndarray:
        """The model on ``x``: on the event loop when the call should take under INLINE_BELOW (by the last
        call's time per image) and can be stopped, else in the model's thread so the loop answers meanwhile."""
        started = time.perf_counter()
        try:
            if self._terminable and self._per_image * len(x) < INLINE_BELOW:
                return self._timed_run(x)
            try:
                return await asyncio.wait_for(self._thread.run(self._timed_run, x), self._limit)
            except TimeoutError as exc:
                raise CallTimeout.after(self._limit) from exc
        finally:
            elapsed = time.perf_counter() - started  # what the caller waited: the metric's duration
            self.stats.record(len(x))
            if self._observe is not None:
                self._observe(len(x), elapsed)

    def _timed_run(self, x: np.ndarray) -> np.ndarray:
        """The model call alone, timed for the next call's choice: a thread's hand-off on a busy machine (it can
        take milliseconds) must not send a fast model to a thread for good."""
        started = time.perf_counter()
        try:
            return self._run(x)
        finally:
            self._per_image = (time.perf_counter() - started) / len(x)


def _settle(waiting: _Waiting, *, result: np.ndarray | None = None, error: BaseException | None = None) -> None:
    """Answer one request, unless its client went away (its future is cancelled)."""
    if waiting.future.done():
        return
    if error is not None:
        waiting.future.set_exception(error)
    else:
        waiting.future.set_result(result)
