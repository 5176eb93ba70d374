"""Tier 0, measurement (timed with :mod:`edgecnn.runtime.timing`, which the device's tuning shares):
``environment`` (machine, cold start), ``subjects`` (what ``edgecnn bench`` times), ``run`` (:func:`run_bench`,
:class:`BenchResult`), ``report`` (its table); ``framings`` (photo-like framings of test images) and
``fitting`` (each ``fit`` mode's accuracy on them)."""

from __future__ import annotations

from edgecnn.bench.report import format_report
from edgecnn.bench.run import BenchResult, run_bench

__all__ = ["BenchResult", "run_bench", "format_report"]
