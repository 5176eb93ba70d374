"""Tuning on the device: the fastest correct configuration of a model file on the machine that runs it.

``auto`` at export measures on the build machine; the file ships everywhere, and on another CPU its choice
can be 1.3–1.9× slower than the best (issue 23). Here the same measurement runs where the model runs:

1. the configurations: each file variant at hand (a zoo net named without a variant offers both) on
   onnxruntime and, where installed, OpenVINO (fp32 in f32 and in any reduced float this CPU computes in,
   the static int8 file as int8), then each of those at thread counts 1, 2, 4 … up to the cores, spinning
   or not (onnxruntime);
2. each gated as auto gates it, on the probe (:mod:`edgecnn.runtime.probe`): against onnxruntime fp32
   when the fp32 variant is at hand, else against the file itself on onnxruntime. Without labelled images
   (a model not trained on a built-in dataset) every configuration is held to the exact gates against the
   file on onnxruntime;
3. timed interleaved at batch 1 and the hint batch, and decided by auto's rule
   (:func:`edgecnn.runtime.fastest.decide`).

With a ``budget`` (seconds; a Predictor's first load gets :data:`PREDICTOR_BUDGET`) the configurations are
opened in that order only while the budget allows: the onnxruntime ones always, then OpenVINO's, then the
thread variants, each only when ``MIN_ROUNDS`` rounds of timing for everything opened still fit in the share
of the budget kept for timing; what did not fit is listed in :attr:`Tuning.left_out`.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.config import BATCH_SIZE_HINT, MAX_ACCURACY_DROP
from edgecnn.errors import ModelFileError, ProviderError, describe
from edgecnn.runtime.backends import onnxruntime_engine
from edgecnn.runtime.candidates import (
    has_openvino,
    open_ort,
    open_ov,
    openvino_options,
    policy_threads,
    thread_ladder,
    thread_variant,
    thread_variants,
)
from edgecnn.runtime.fastest import SETTLE, AutoDecision, Contender, batched_logits, decide, judged_row
from edgecnn.runtime.gates import FP32_MAX_ABS, Gates, gates_for_precision
from edgecnn.runtime.metadata import ModelMetadata, read_metadata
from edgecnn.runtime.probe import Probe, probe_for
from edgecnn.runtime.session import open_session, physical_cores
from edgecnn.runtime.threads import default_spinning
from edgecnn.runtime.timing import Clock, measure_interleaved, summarize

__all__ = ["PREDICTOR_BUDGET", "Tuning", "thread_ladder", "tune"]

PREDICTOR_BUDGET = 1.3  # s: a Predictor's first load without a cache entry. Issue 23's goal is ≤ 1.5 s more than
#   a load with one; the rest is for what surrounds the tuning (opening the variants, writing the entry)
TIMING_SHARE = 0.4  # of a budget, kept for the timing
MIN_ROUNDS = 2  # rounds of timing (every configuration, one block each) a budget must leave room for
BLOCK = 5  # timed runs per configuration per round under a budget (10 without, as in edgecnn.runtime.timing)
UNBUDGETED_ITERS = 100  # timed runs per configuration and batch size without a budget (edgecnn tune)
EXACT = Gates(min_agreement=1.0, max_abs=FP32_MAX_ABS)


@dataclass(frozen=True)
class Tuning:
    """A tuning's outcome: the decision (auto's table and rule), the files it chose among, and what it skipped."""

    decision: AutoDecision
    files: Mapping[str, Path]  # file variant (quantization mode) → path
    probe: str
    budget_s: float | None
    elapsed_s: float
    left_out: tuple[str, ...]  # "static@openvino t1: the budget", …

    @property
    def path(self) -> Path:
        """The chosen configuration's file."""
        return self.files[self.decision.row.mode]

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision.to_dict(),
            "files": {mode: str(path) for mode, path in self.files.items()},
            "file": str(self.path),
            "probe": self.probe,
            "budget_s": self.budget_s,
            "elapsed_s": round(self.elapsed_s, 3),
            "left_out": list(self.left_out),
        }


def tune(
    files: Mapping[str, Path],
    primary: str,
    *,
    batch_size_hint: int = BATCH_SIZE_HINT,
    budget: float | None = None,
    max_accuracy_drop: float = MAX_ACCURACY_DROP,
    backends: Sequence[str] | None = None,
    threads: int | None = None,
    metadata: ModelMetadata | None = None,
    clock: Clock = time.perf_counter,
) -> Tuning:
    """Tune ``files`` (mode → path; ``primary`` the one asked for) on this machine; see the module docstring.
    ``threads``: pinned (every configuration runs with that many); None: the thread ladder is tried.
    ``metadata``: the primary file's, when the caller holds it (a file without edgecnn metadata: the
    caller's description of it); else read from the file."""
    start = clock()
    ort_threads = threads or policy_threads("onnxruntime")
    anchor = open_session(files[primary], threads=ort_threads, spinning=default_spinning())
    probe = probe_for(metadata or read_metadata(anchor, source=str(files[primary])))
    one_at_a_time = _fixed_batch(onnxruntime_engine(anchor, "cpu", primary), probe, files[primary])
    batch_size_hint = 1 if one_at_a_time else batch_size_hint  # a graph whose batch axis is fixed at 1
    search = _Search(start, budget, clock, batch_size_hint, probe_batch=1 if one_at_a_time else 256)
    if probe.labels is None:  # siblings differ in precision: without labels they cannot be judged
        files = {primary: files[primary]}
    reference = "none" if probe.labels is not None and "none" in files else primary
    gates = functools.partial(_gates, max_accuracy_drop if probe.labels is not None else None)
    for mode, path in files.items():  # the onnxruntime configurations at the thread policy: always
        search.admit(open_ort(mode, path, ort_threads, gates, anchor if mode == primary else None), probe)
    _open_the_rest(search, files, probe, reference, gates, threads, backends)
    latency = search.time(search.passing(reference), probe)
    unmeasured = {"1": math.nan, str(batch_size_hint): math.nan}  # failed its gates on the probe: not timed
    rows = [
        judged_row(c, search.logits[c.name], search.logits[reference], probe.labels, latency.get(c.name, unmeasured))
        for c in search.contenders
    ]
    decision = decide(rows, batch_size_hint=batch_size_hint, max_accuracy_drop=max_accuracy_drop, reference=reference)
    return Tuning(decision, dict(files), probe.source, budget, clock() - start, tuple(search.left_out))


def _open_the_rest(
    search: _Search,
    files: Mapping[str, Path],
    probe: Probe,
    reference: str,
    gates: Callable[[str], Gates],
    threads: int | None,
    backends: Sequence[str] | None,
) -> None:
    """OpenVINO's configurations (the files' own precision first), then the thread variants of every one that
    passes (fastest first): each only while the budget allows."""
    ov_threads = threads or policy_threads("openvino")
    options = [(m, h) for m in files for h in openvino_options(m)] if has_openvino(backends) else []
    for mode, hint in sorted(options, key=lambda option: option[1] != "f32"):
        name = f"{mode}@openvino" + ("" if hint == "f32" else f":{hint}")
        search.consider(name, mode, probe, lambda m=mode, h=hint: open_ov(m, files[m], h, ov_threads, gates))
    ladder = (threads,) if threads else thread_ladder(physical_cores())
    for base in search.passing(reference):
        for count, spinning in thread_variants(base, ladder):
            name = f"{base.name} t{count}" + ("" if spinning or count == 1 else " no-spin")
            search.consider(name, base.name, probe, lambda b=base, t=count, s=spinning: thread_variant(b, t, s, gates))


def _gates(max_accuracy_drop: float | None, precision: str) -> Gates:
    """auto's gates for ``precision``; without labelled images (``max_accuracy_drop`` None) the exact ones."""
    return EXACT if max_accuracy_drop is None else gates_for_precision(precision, max_accuracy_drop)


class _Search:
    """The configurations opened so far, their probe logits, and the budget's bookkeeping."""

    def __init__(self, start: float, budget: float | None, clock: Clock, hint: int, probe_batch: int) -> None:
        self.clock, self.budget, self.hint, self.probe_batch = clock, budget, hint, probe_batch
        self.open_until = math.inf if budget is None else start + budget * (1 - TIMING_SHARE)
        self.deadline = math.inf if budget is None else start + budget
        self.contenders: list[Contender] = []
        self.logits: dict[str, np.ndarray] = {}
        self.per_image: dict[str, float] = {}  # seconds per image, from the probe's batched run
        self.left_out: list[str] = []

    def admit(self, contender: Contender | None, probe: Probe) -> None:
        if contender is None:
            return
        started = self.clock()
        try:
            self.logits[contender.name] = batched_logits(contender.engine.run, probe.feed, self.probe_batch)
        except contender.engine.errors as exc:  # this configuration cannot run the probe: the others still stand
            if not self.contenders:  # the file itself on onnxruntime: nothing to compare with
                raise ProviderError(f"onnxruntime cannot run the probe through it: {describe(exc)}") from exc
            self.left_out.append(f"{contender.name}: {describe(exc)}")
            return
        self.per_image[contender.name] = max((self.clock() - started) / len(probe.feed), 0.0)
        self.contenders.append(contender)

    def passing(self, reference: str) -> list[Contender]:
        """The configurations whose logits pass their gates against the reference's, fastest on the probe first
        (the accuracy gate, which needs the whole table, is judged by decide)."""
        theirs = self.logits[reference]
        passed = [c for c in self.contenders if c.name == reference or _passes(c, self.logits[c.name], theirs)]
        return sorted(passed, key=lambda c: self.per_image[c.name])

    def consider(self, name: str, like: str, probe: Probe, opener: Callable[[], Contender | None]) -> None:
        """Open ``name`` (through ``opener``) if the budget leaves room for it; ``like``: the configuration whose
        speed estimates its own until it is measured."""
        if self.clock() >= self.open_until or not self._timing_fits(self.per_image.get(like, 0.0)):
            self.left_out.append(f"{name}: the budget")
            return
        try:
            contender = opener()
        except (ModelFileError, ProviderError) as exc:  # an op OpenVINO lacks: the others still stand
            self.left_out.append(f"{name}: {exc}")
            return
        self.admit(contender, probe)

    def _timing_fits(self, extra_per_image: float) -> bool:
        if self.budget is None:
            return True
        per_round = sum(self._round_cost(p, 1) + self._round_cost(p, self.hint) for p in self.per_image.values())
        extra = self._round_cost(extra_per_image, 1) + self._round_cost(extra_per_image, self.hint)
        return MIN_ROUNDS * (per_round + extra) <= self.budget * TIMING_SHARE

    @staticmethod
    def _round_cost(per_image: float, batch: int) -> float:
        """A configuration's share of one round: the settle, an untimed run and a block, at ``batch``."""
        return SETTLE + (BLOCK + 1) * max(per_image * batch, 20e-6)

    def time(self, contenders: Sequence[Contender], probe: Probe) -> dict[str, dict[str, float]]:
        """p50 ms of ``contenders`` at batch 1 and the hint, interleaved; within the budget left."""
        runs = {c.name: c.engine.run for c in contenders}
        result: dict[str, dict[str, float]] = {name: {} for name in runs}
        sizes = tuple(dict.fromkeys((1, self.hint)))
        for i, batch in enumerate(sizes):
            x = np.ascontiguousarray(np.resize(probe.feed, (batch, *probe.feed.shape[1:])))
            if self.budget is None:
                samples = measure_interleaved(
                    runs, dict.fromkeys(runs, x), iters=UNBUDGETED_ITERS, settle=SETTLE, clock=self.clock
                )
            else:  # stop a round early enough that the last one ends by the deadline
                share = max(self.deadline - self.clock(), 0.0) / (len(sizes) - i)
                last_round = sum(self._round_cost(self.per_image[name], batch) for name in runs)
                samples = measure_interleaved(
                    runs,
                    dict.fromkeys(runs, x),
                    warmup=1,
                    block=BLOCK,
                    duration=max(share - last_round, 0.0),
                    settle=SETTLE,
                    clock=self.clock,
                )
            for name, times in samples.items():
                result[name][str(batch)] = round(summarize(times)["p50"], 5)
        return result


def _fixed_batch(engine: Any, probe: Probe, path: Path) -> bool:
    """Whether the graph takes one image at a time only (a batch axis fixed at 1, as some exporters write it)."""
    try:
        engine.run(probe.feed[:2])
    except engine.errors:
        try:
            engine.run(probe.feed[:1])
        except engine.errors as exc:
            raise ProviderError(f"onnxruntime cannot run {path.name} on the tuning probe: {describe(exc)}") from exc
        return True
    return False


def _passes(contender: Contender, ours: np.ndarray, theirs: np.ndarray) -> bool:
    agreement = float((ours.argmax(1) == theirs.argmax(1)).mean())
    max_abs = float(np.abs(ours - theirs).max())
    gates = contender.gates
    if gates.max_accuracy_drop_pp is not None:  # judged fully in the table; here only what logits alone say
        gates = Gates(min_agreement=gates.min_agreement, max_abs=gates.max_abs)
    return not gates.failures(max_abs=max_abs, agreement=agreement, reference_accuracy=0.0, accuracy=0.0)
