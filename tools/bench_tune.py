#!/usr/bin/env python
"""Tuning on the device, measured (BENCHMARKS.md, "Tuning on the device"): for every zoo net on this machine,

1. **recorded vs tuned vs fastest**, at 1 and 2 threads: the configuration auto recorded in the zoo file at
   export (on the build machine); the one a tuning here chooses within a Predictor's budget; and the fastest
   configuration that passes the gates, found by a full tuning (every configuration, 100 timed runs each) —
   then all three, and onnxruntime fp32, timed side by side in one interleaved run at batch 1 and 64;
2. **the Predictor's own cost**: ``Predictor.logits`` of the tuned Predictor vs the bare call of the same
   configuration (``InferenceSession.run`` / OpenVINO's ``infer``) on the same batch-1 input, interleaved;
3. **start-up**: a fresh process that imports edgecnn and loads ``Predictor.from_zoo(NAME)`` — with no cache
   entry (it tunes), with one, and with tuning off (``EDGECNN_TUNE=0``: the choice recorded in the file, as
   before issue 23) — alternating, medians.

    .venv/bin/python tools/bench_tune.py [--nets mnist_cnn3,convnet5] [--json out.json] [--starts 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.runtime import Predictor
from edgecnn.runtime.fastest import SETTLE
from edgecnn.runtime.fingerprint import this_machine
from edgecnn.runtime.metadata import read_metadata
from edgecnn.runtime.probe import probe_for
from edgecnn.runtime.session import open_session
from edgecnn.runtime.timing import measure_interleaved, summarize
from edgecnn.runtime.tuning import PREDICTOR_BUDGET, tune
from edgecnn.runtime.zoo import list_zoo, resolve_zoo, zoo_variant_files

HINT = 64
ITERS = 300
START = """
import os, sys, time
started = time.perf_counter()
from edgecnn.runtime import Predictor
p = Predictor.from_zoo(sys.argv[1])
print(time.perf_counter() - started, p.backend, p.precision, p.path.name)
"""


def engine_of(files: dict[str, Path], row: Any) -> Any:
    """The engine a table row names, opened afresh (threads and spinning as the row says)."""
    from edgecnn.runtime.backends import onnxruntime_engine, openvino_engine

    path = files[row.mode]
    if row.backend == "openvino":
        return openvino_engine(path, precision=row.hint, threads=row.threads)
    return onnxruntime_engine(open_session(path, threads=row.threads, spinning=row.spinning), "cpu", row.mode)


def recorded_engine(path: Path, threads: int) -> tuple[str, Any]:
    from edgecnn.runtime.backends import onnxruntime_engine, openvino_engine, recorded_backend

    meta = read_metadata(open_session(path), source=str(path))
    backend, hint = recorded_backend(path, meta.quantization, "cpu")
    if backend == "openvino":
        engine = openvino_engine(path, precision=hint, threads=threads)
    else:
        engine = onnxruntime_engine(open_session(path, threads=threads), "cpu", meta.quantization.get("mode"))
    return f"{engine.backend} {engine.precision}", engine


def compare(net: str, threads: int) -> dict[str, Any]:
    files = zoo_variant_files(f"zoo:{net}")
    default = resolve_zoo(f"zoo:{net}")
    primary = next(mode for mode, path in files.items() if path == default)
    full = tune(files, primary, batch_size_hint=HINT, budget=None, threads=threads)
    quick = tune(files, primary, batch_size_hint=HINT, budget=PREDICTOR_BUDGET, threads=threads)
    passing = [row for row in full.decision.table if row.eligible]
    fastest = {b: min(passing, key=lambda row, b=b: row.latency_ms[b]) for b in ("1", str(HINT))}
    rows = {"tuned": quick.decision.row, "fastest b1": fastest["1"], f"fastest b{HINT}": fastest[str(HINT)]}
    rows["onnxruntime fp32"] = full.decision.reference
    label, recorded = recorded_engine(default, threads)
    runs = {"recorded": recorded.run, **{name: engine_of(files, row).run for name, row in rows.items()}}
    feed = probe_for(read_metadata(open_session(default), source=net)).feed
    result: dict[str, Any] = {
        "net": net,
        "threads": threads,
        "recorded": label,
        "tuned": quick.decision.row.candidate,
        "tuned_in_s": round(quick.elapsed_s, 2),
        "fastest": {b: row.candidate for b, row in fastest.items()},
        "full_tuning": full.decision.chosen,
        "p50_ms": {},
    }
    for batch in (1, HINT):
        x = np.ascontiguousarray(np.resize(feed, (batch, *feed.shape[1:])))
        samples = measure_interleaved(runs, dict.fromkeys(runs, x), iters=ITERS, settle=SETTLE)
        result["p50_ms"][str(batch)] = {name: round(summarize(t)["p50"], 4) for name, t in samples.items()}
    return result


def overhead(net: str) -> dict[str, Any]:
    """The tuned Predictor's logits() against the bare call of its own configuration, batch 1."""
    predictor = Predictor.from_zoo(net, tune=True)
    engine = predictor.engine
    x = predictor.prepare(np.zeros((1, 28, 28), np.uint8))
    if engine.backend == "onnxruntime":
        session = engine.handle
        outputs, name = [session.get_outputs()[0].name], session.get_inputs()[0].name
        bare = lambda: session.run(outputs, {name: x})[0]  # noqa: E731
    else:
        request = engine.handle.create_infer_request()
        bare = lambda: request.infer({0: x})[0]  # noqa: E731
    runs = {"bare": lambda _: bare(), "logits": predictor.logits}
    samples = measure_interleaved(runs, dict.fromkeys(runs, x), iters=4000, block=20, warmup=200)
    p50 = {name: summarize(t)["p50"] * 1e3 for name, t in samples.items()}
    return {
        "net": net,
        "config": f"{engine.backend} {engine.precision}",
        "bare_us": round(p50["bare"], 2),
        "logits_us": round(p50["logits"], 2),
        "ratio": round(p50["logits"] / p50["bare"], 3),
    }


def startups(net: str, runs: int) -> dict[str, Any]:
    """Fresh processes: load with no cache entry (tunes), with one, and with tuning off; alternating."""
    times: dict[str, list[float]] = {"no entry (tunes)": [], "with entry": [], "tuning off": []}
    with tempfile.TemporaryDirectory() as root:
        for i in range(runs):
            for case in times:
                cache = Path(root) / (f"fresh{i}" if case.startswith("no entry") else "kept")
                env = {**os.environ, "EDGECNN_CACHE": str(cache), "EDGECNN_TUNE": "0" if case == "tuning off" else "1"}
                if case == "with entry" and not (cache / "tune").is_dir():
                    subprocess.run([sys.executable, "-c", START, net], env=env, check=True, capture_output=True)
                out = subprocess.run([sys.executable, "-c", START, net], env=env, check=True, capture_output=True)
                times[case].append(float(out.stdout.split()[0]))
    return {case: round(statistics.median(t), 3) for case, t in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", default=None, help="Comma-separated zoo nets (default: all)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    nets = args.nets.split(",") if args.nets else [row.name for row in list_zoo()]
    machine = this_machine()
    print(f"# {machine.summary()}")
    report: dict[str, Any] = {"machine": machine.to_dict(), "compare": [], "overhead": [], "startup": {}}
    for net in nets:
        for threads in (1, 2):
            row = compare(net, threads)
            report["compare"].append(row)
            print(json.dumps(row))
        report["overhead"].append(overhead(net))
        print(json.dumps(report["overhead"][-1]))
        report["startup"][net] = startups(net, args.starts)
        print(net, json.dumps(report["startup"][net]))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
