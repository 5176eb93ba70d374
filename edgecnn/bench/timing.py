"""Latency you can trust: several models timed round-robin in one run, summarized as percentiles and
compared as ratios.

Microsecond-scale models are noisier than the differences between their variants; comparing two
variants measured minutes apart compares the machine's moods. Here the variants take turns in short
blocks (one untimed run, then ``block`` timed runs each): short enough that drift hits all alike, long
enough that each block runs with its own weights in cache, as a deployed model does. Sessions timed
side by side must not spin (see :func:`edgecnn.runtime.session.open_session`): measured on 2 cores, five
spinning sessions made mnist_cnn3's fp32 graph look 60 % slower than it runs alone.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["Clock", "measure_interleaved", "summarize", "compare_latency"]

Clock = Callable[[], float]


def measure_interleaved(
    sessions: Mapping[str, Any],
    feeds: Mapping[str, Mapping[str, np.ndarray]],
    *,
    iters: int = 200,
    warmup: int = 10,
    block: int = 10,
    duration: float | None = None,
    clock: Clock = time.perf_counter,
    settle: float = 0.0,
) -> dict[str, list[float]]:
    """Timings (seconds per ``session.run``) for each named session, taken in alternating blocks:
    ``iters`` each, or as many as fit in ``duration`` seconds for all together (at least one block).
    ``settle``: seconds slept before each block, so that sessions whose idle threads spin (as a Predictor's
    do by default) have parked them before the next one runs."""
    names = list(sessions)
    for _ in range(warmup):
        for name in names:
            sessions[name].run(None, feeds[name])
    samples: dict[str, list[float]] = {name: [] for name in names}
    started = clock()

    def more() -> bool:
        if duration is not None:
            return not samples[names[-1]] or clock() - started < duration
        return len(samples[names[-1]]) < iters

    while more():
        for name in names:
            session, feed, times = sessions[name], feeds[name], samples[name]
            if settle:
                time.sleep(settle)
            session.run(None, feed)  # untimed: brings this variant's weights back into cache
            count = block if duration is not None else min(block, iters - len(times))
            for _ in range(count):
                start = clock()
                session.run(None, feed)
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


def compare_latency(
    paths: Mapping[str, Any],
    feed: np.ndarray,
    *,
    input_name: str,
    batch_sizes: tuple[int, ...],
    iters: int = 200,
) -> dict[str, dict[str, float]]:
    """p50 milliseconds of each model file at each batch size, the models interleaved in one run."""
    from edgecnn.runtime.session import open_session

    sessions = {name: open_session(path, spinning=False) for name, path in paths.items()}
    result: dict[str, dict[str, float]] = {name: {} for name in paths}
    for batch in batch_sizes:
        x = np.ascontiguousarray(np.resize(feed, (batch, *feed.shape[1:])))
        samples = measure_interleaved(sessions, {name: {input_name: x} for name in sessions}, iters=iters)
        for name, times in samples.items():
            result[name][str(batch)] = round(summarize(times)["p50"], 5)
    return result
