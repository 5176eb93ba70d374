"""``edgecnn bench``'s measurement: every subject round-robin per batch size, then cold starts."""

from __future__ import annotations

import dataclasses
import itertools
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.bench.environment import cold_start, environment
from edgecnn.bench.subjects import ModelInfo, Subject, onnx_subject, torch_subject
from edgecnn.config import BenchConfig, config_to_dict
from edgecnn.errors import ConfigError, ProviderError, describe
from edgecnn.runtime.threads import default_spinning
from edgecnn.runtime.timing import measure_interleaved, summarize

__all__ = ["LatencyRow", "BenchResult", "run_bench"]


@dataclass(frozen=True)
class LatencyRow:
    """One model at one batch size: milliseconds, samples/s, and the p50 ratio to the first model."""

    p50: float
    p90: float
    p99: float
    mean: float
    std: float
    min: float
    max: float
    samples: int
    throughput: float
    ratio_p50: float

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class BenchResult:
    environment: dict[str, Any]
    config: BenchConfig
    spinning: bool  # False when several sessions took turns (then none spins)
    models: tuple[ModelInfo, ...]
    batches: dict[str, dict[str, LatencyRow]]  # batch size → model name → row

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "config": {**config_to_dict(self.config), "batch_sizes": list(self.config.batch_sizes)},
            "spinning": self.spinning,
            "models": [m.to_dict() for m in self.models],
            "batches": {b: {name: row.to_dict() for name, row in rows.items()} for b, rows in self.batches.items()},
        }


def run_bench(
    models: list[str | os.PathLike[str]],
    config: BenchConfig,
    *,
    torch_checkpoint: str | None = None,
    log: Callable[[str], None] = lambda _: None,
    on_stop: Callable[[Callable[[], None]], None] = lambda _: None,
) -> BenchResult:
    """Measure ``models`` (and torch eager, given a checkpoint) round-robin; ``on_stop`` is handed each model's
    ``stop`` as soon as it is opened, before its first call (the CLI calls them on Ctrl-C)."""
    counts = config.threads or (None,)
    if torch_checkpoint is not None and len(counts) > 1:
        raise ConfigError("torch eager runs at one thread count: give one --threads value with --torch")
    alone = len(models) * len(config.backends) * len(counts) + (torch_checkpoint is not None) == 1
    spinning = default_spinning() if alone else False  # alone: as the Predictor runs it (the thread policy)
    tag = len(config.backends) > 1 or len(counts) > 1
    subjects: list[Subject] = []
    try:
        for m, b, t in itertools.product(models, config.backends, counts):
            subjects.append(
                onnx_subject(Path(m), config, spinning=spinning, backend=b, threads=t, tag=tag, on_stop=on_stop)
            )
        if torch_checkpoint is not None:
            subjects.append(torch_subject(torch_checkpoint, config))
        batches = {str(batch): _measure_batch(subjects, config, batch, log) for batch in config.batch_sizes}
        infos = tuple(_with_cold_start(s, config, log) for s in subjects)
    finally:
        for subject in subjects:
            subject.close()
    return BenchResult(environment=environment(), config=config, spinning=spinning, models=infos, batches=batches)


def _measure_batch(
    subjects: list[Subject], config: BenchConfig, batch: int, log: Callable[[str], None]
) -> dict[str, LatencyRow]:
    log(f"batch {batch}: measuring {', '.join(s.name for s in subjects)}")
    inputs = {s.name: s.feed(batch) for s in subjects}
    for subject in subjects:  # one untimed call each: a model that cannot run at this batch size is named
        subject.checked_run(inputs[subject.name], f"at batch {batch}")
    errors = tuple({error for s in subjects for error in s.errors})
    try:
        samples = measure_interleaved(
            {s.name: s.run for s in subjects},
            inputs,
            iters=config.iters,
            warmup=config.warmup,
            duration=config.duration,
        )
    except errors as exc:
        raise ProviderError(f"a model failed while timed at batch {batch}: {describe(exc)}") from exc
    stats = {name: summarize(times) for name, times in samples.items()}
    first = stats[subjects[0].name]["p50"]
    return {
        name: LatencyRow(
            **s, samples=len(samples[name]), throughput=batch * 1e3 / s["mean"], ratio_p50=s["p50"] / first
        )
        for name, s in stats.items()
    }


def _with_cold_start(subject: Subject, config: BenchConfig, log: Callable[[str], None]) -> ModelInfo:
    if not config.cold_runs:
        return subject.info
    log(f"cold start: {subject.name} ({config.cold_runs} fresh processes)")
    runs = [cold_start(*subject.cold) for _ in range(config.cold_runs)]
    return dataclasses.replace(
        subject.info,
        cold_start_ms=statistics.median(w for w, _ in runs) * 1e3,
        peak_rss_mib=statistics.median(r for _, r in runs),
    )
