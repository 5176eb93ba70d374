"""Tier 0, measurement: ``timing`` (interleaved runs, percentiles), ``environment`` (machine, cold
start), ``subjects`` (what is timed), ``run`` (:func:`run_bench`, :class:`BenchResult`), ``report``."""

from __future__ import annotations

from edgecnn.bench.report import format_report
from edgecnn.bench.run import BenchResult, run_bench

__all__ = ["BenchResult", "run_bench", "format_report"]
