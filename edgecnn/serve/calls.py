"""Model calls that can be stopped: a time limit per call (``--call-timeout``, a 504 and the server goes on), and
a drain that never waits on a call for ever (``--drain-timeout``: the call is abandoned, the exit status is 1).

An onnxruntime call runs the model's ``InferenceSession`` with a ``RunOptions`` of its own; a watchdog thread
sets that call's ``terminate`` once its time is up (onnxruntime checks it between the graph's nodes), or, at the
drain's deadline, every call's. The public ``session.run`` costs about 2 µs more than the compiled session's
own run that ``Predictor.logits`` calls: nothing beside a request's HTTP work. An OpenVINO call cannot be
stopped from outside here: it runs in the model's daemon thread (never on the event loop), its waiters get 504
at the limit, the next calls queue behind it, and an exit leaves it behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import onnxruntime

from edgecnn.errors import EdgeCNNError, ModelFileError, ProviderError, describe
from edgecnn.runtime.predictor import Predictor
from edgecnn.runtime.scores import all_finite

__all__ = ["CallTimeout", "Watchdog", "ModelCall", "ModelThread"]

_DRAINED = "the server's drain ran out of time (--drain-timeout)"


class CallTimeout(EdgeCNNError):
    """A model call ran past the server's ``--call-timeout`` and was stopped (HTTP 504)."""

    status = 504

    @classmethod
    def after(cls, limit: float | None) -> CallTimeout:
        return cls(f"the model call was stopped: it took longer than {limit:g} s (--call-timeout)")


class _Watched:
    def __init__(self, options: Any, deadline: float) -> None:
        self.options, self.deadline, self.why = options, deadline, ""

    def stop(self, why: str) -> None:
        self.why = why
        if self.options is not None:
            self.options.terminate = True


class Watchdog:
    """Sets ``terminate`` on the calls that pass their deadline, ``limit`` seconds after they began, and on every
    call once the drain's deadline passes (:meth:`drain_by`), checked by a daemon thread every ``period``
    seconds: it acts even while a call holds the event loop, which could not run a signal handler meanwhile."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.drain_deadline = math.inf  # time.monotonic()'s
        self.abandoned = 0  # calls stopped at the drain's deadline
        self._calls: dict[int, _Watched] = {}
        self._period = min(0.1, max(0.005, limit / 10))  # a call is stopped within limit + period
        threading.Thread(target=self._watch, name="edgecnn-watchdog", daemon=True).start()

    def watch(self, options: Any) -> _Watched:
        watched = _Watched(options, time.monotonic() + self.limit)
        self._calls[id(watched)] = watched
        return watched

    def release(self, watched: _Watched) -> None:
        self._calls.pop(id(watched), None)

    def drain_by(self, deadline: float) -> None:
        """The drain must end by ``deadline`` (time.monotonic()'s): every call still running then is stopped."""
        self.drain_deadline = min(self.drain_deadline, deadline)

    def stop_all(self) -> int:
        """Stop every call in flight (the drain's deadline); how many calls the drain has stopped in all."""
        for watched in list(self._calls.values()):
            if not watched.why:
                watched.stop(_DRAINED)
                self.abandoned += 1
        return self.abandoned

    def _watch(self) -> None:
        while True:
            time.sleep(self._period)
            now = time.monotonic()
            if now >= self.drain_deadline:
                self.stop_all()
            for watched in list(self._calls.values()):
                if now >= watched.deadline and not watched.why:
                    watched.stop(f"it took longer than {self.limit:g} s (--call-timeout)")


class ModelCall:
    """``predictor``'s model call, ``call(x) -> scores``, stoppable by ``watchdog`` where the engine allows it
    (:attr:`terminable`); the scores are checked as ``Predictor.logits`` checks them."""

    def __init__(self, predictor: Predictor, watchdog: Watchdog) -> None:
        self.predictor, self.watchdog = predictor, watchdog
        self.terminable = predictor.backend == "onnxruntime"
        if self.terminable:
            session = predictor.session
            self._feed, self._outputs = session.get_inputs()[0].name, [session.get_outputs()[0].name]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if not self.terminable:
            return self.predictor.logits(x)
        options = onnxruntime.RunOptions()
        options.log_severity_level = 4  # no onnxruntime line for a stopped run: the request gets its 504 instead
        watched = self.watchdog.watch(options)
        try:
            scores = self.predictor.session.run(self._outputs, {self._feed: x}, options)[0]
        except self.predictor.engine.errors as exc:
            if watched.why:
                raise CallTimeout(f"the model call was stopped: {watched.why}") from exc
            raise ProviderError(f"onnxruntime failed to run {self.predictor.path.name}: {describe(exc)}") from exc
        finally:
            self.watchdog.release(watched)
        if scores.shape != (len(x), len(self.predictor.classes)) or not all_finite(scores):
            what = "NaN or infinite scores" if scores.shape[:1] == (len(x),) else f"scores of shape {scores.shape}"
            raise ModelFileError(f"{self.predictor.path.name} returned {what}: the model or its weights are broken")
        return scores


class ModelThread:
    """One daemon thread that runs a model's calls in order, off the event loop. Daemon: a call that never
    returns does not hold the process at exit (a ThreadPoolExecutor's threads are joined then)."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=f"edgecnn-model-{name}", daemon=True)
        self._thread.start()

    def run(self, call: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> asyncio.Future[np.ndarray]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._jobs.put((loop, future, call, x))
        return future

    def close(self) -> None:
        """The thread ends after the calls already queued (at once, if none is running)."""
        self._jobs.put(None)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, call, x = job
            try:
                outcome: tuple[Any, BaseException | None] = (call(x), None)
            except Exception as exc:  # noqa: BLE001 - handed to the waiting request, as the loop would raise it
                outcome = (None, exc)
            with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile: nobody waits for it
                loop.call_soon_threadsafe(_settle, future, *outcome)


def _settle(future: asyncio.Future[np.ndarray], result: Any, error: BaseException | None) -> None:
    if future.done():  # its waiter gave up (a time limit, a drain)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
