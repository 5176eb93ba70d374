"""Latency you can trust: several models timed round-robin in one run, summarized as percentiles and
compared as ratios.

What is timed is a :data:`Run`: one array in, scores out — the call shape of
:attr:`edgecnn.runtime.backends.Engine.run`, which every timing path uses as it is (an engine's ``run``,
``Predictor.logits``, torch eager behind a one-line closure); nothing is wrapped to look like a session.

Microsecond-scale models are noisier than the differences between their variants; comparing two
variants measured minutes apart compares the machine's moods. Here the variants take turns in short
blocks (one untimed run, then ``block`` timed runs each): short enough that drift hits all alike, long
enough that each block runs with its own weights in cache, as a deployed model does. Sessions timed
side by side must not spin (see :func:`edgecnn.runtime.session.open_session`; BENCHMARKS.md, "Timing
side by side: why the timed sessions do not spin").
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["Clock", "Run", "measure_interleaved", "summarize", "p50_by_batch", "compare_latency"]

Clock = Callable[[], float]
Run = Callable[[np.ndarray], Any]  # Engine.run's shape: a batch in, scores out


def measure_interleaved(
    runs: Mapping[str, Run],
    inputs: Mapping[str, np.ndarray],
    *,
    iters: int = 200,
    warmup: int = 10,
    block: int = 10,
    duration: float | None = None,
    clock: Clock = time.perf_counter,
    settle: float = 0.0,
) -> dict[str, list[float]]:
    """Timings (seconds per call of ``runs[name](inputs[name])``) for each named model, taken in
    alternating blocks: ``iters`` each, or as many as fit in ``duration`` seconds for all together (at
    least one block). ``settle``: seconds slept before each block, so that sessions whose idle threads spin
    (as a Predictor's do by default) have parked them before the next one runs."""
    names = list(runs)
    for _ in range(warmup):
        for name in names:
            runs[name](inputs[name])
    samples: dict[str, list[float]] = {name: [] for name in names}
    started = clock()

    def more() -> bool:
        if duration is not None:
            return not samples[names[-1]] or clock() - started < duration
        return len(samples[names[-1]]) < iters

    while more():
        for name in names:
            run, x, times = runs[name], inputs[name], samples[name]
            if settle:
                time.sleep(settle)
            run(x)  # untimed: brings this variant's weights back into cache
            count = block if duration is not None else min(block, iters - len(times))
            for _ in range(count):
                start = clock()
                run(x)
                times.append(clock() - start)
    return samples


def summarize(samples: list[float]) -> dict[str, float]:
    """Milliseconds: p50, p90, p99, mean, std, min, max (nearest-rank percentiles)."""
    ordered = sorted(samples)
    rank = lambda q: ordered[min(len(ordered) - 1, max(0, int(np.ceil(q * len(ordered))) - 1))]  # noqa: E731
    ms = 1e3
    return {
        "p50": rank(0.50) * ms,
        "p90": rank(0.90) * ms,
        "p99": rank(0.99) * ms,
        "mean": statistics.fmean(ordered) * ms,
        "std": (statistics.stdev(ordered) if len(ordered) > 1 else 0.0) * ms,
        "min": ordered[0] * ms,
        "max": ordered[-1] * ms,
    }


def p50_by_batch(
    runs: Mapping[str, Run],
    feed: np.ndarray,
    *,
    batch_sizes: tuple[int, ...],
    iters: int = 200,
    clock: Clock = time.perf_counter,
    settle: float = 0.0,
) -> dict[str, dict[str, float]]:
    """p50 milliseconds of each model at each batch size (``feed``'s rows, repeated as needed), the models
    interleaved in one run per batch size."""
    result: dict[str, dict[str, float]] = {name: {} for name in runs}
    for batch in dict.fromkeys(batch_sizes):
        x = np.ascontiguousarray(np.resize(feed, (batch, *feed.shape[1:])))
        samples = measure_interleaved(runs, dict.fromkeys(runs, x), iters=iters, clock=clock, settle=settle)
        for name, times in samples.items():
            result[name][str(batch)] = round(summarize(times)["p50"], 5)
    return result


def compare_latency(
    paths: Mapping[str, Any], feed: np.ndarray, *, batch_sizes: tuple[int, ...], iters: int = 200
) -> dict[str, dict[str, float]]:
    """:func:`p50_by_batch` of model files on onnxruntime's CPU engine, in sessions that do not spin."""
    from edgecnn.runtime.backends import onnxruntime_engine
    from edgecnn.runtime.session import open_session

    runs = {name: onnxruntime_engine(open_session(p, spinning=False), "cpu", None).run for name, p in paths.items()}
    return p50_by_batch(runs, feed, batch_sizes=batch_sizes, iters=iters)
