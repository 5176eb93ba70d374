"""The thread policy's evidence: threads × spinning per backend, on an idle machine and beside a busy core.

    .venv/bin/python tools/bench_threads.py [--nets keras_same,convnet5,fashion_bn] [--seconds 1.5]
        [--rounds 3] [--markdown FILE]

A device app runs one model in one process, so each configuration is timed alone, in a fresh process of
its own (a spinning session's idle threads would otherwise steal the next one's CPU), as a device app opens
it (``Predictor.from_zoo(NAME, backend=, threads=, spinning=)``) through ``Predictor.logits`` at batch 1 and
64 for ``--seconds`` each. The configurations take turns, ``--rounds`` times (drift hits all alike); the
table gives the median of the rounds' p50s. "busy": another process keeps one core 100 % busy meanwhile
(a camera loop, a web UI: what shares a 2-core edge box), started before and stopped after each
measurement.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = (  # label, backend, threads, spinning (OpenVINO has no spinning switch: its threads park)
    ("onnxruntime 1 thread", "onnxruntime", 1, True),
    ("onnxruntime 2 threads, spinning", "onnxruntime", 2, True),
    ("onnxruntime 2 threads, no spinning", "onnxruntime", 2, False),
    ("openvino 1 thread", "openvino", 1, None),
    ("openvino 2 threads", "openvino", 2, None),
)
BATCHES = (1, 64)

_CHILD = """
import json, sys, time
import numpy as np
from edgecnn.runtime.timing import summarize
from edgecnn.runtime import Predictor
name, variant, backend, threads, spinning, seconds = sys.argv[1:7]
options = {"backend": backend, "threads": int(threads)}
if spinning != "None":
    options["spinning"] = spinning == "True"
p = Predictor.from_zoo(name, variant, **options)
result = {}
for batch in (1, 64):
    x = np.random.default_rng(0).standard_normal((batch, *p.metadata.input.graph_shape)).astype(np.float32)
    for _ in range(20):
        p.logits(x)
    times, end = [], time.perf_counter() + float(seconds)
    while time.perf_counter() < end:
        start = time.perf_counter()
        p.logits(x)
        times.append(time.perf_counter() - start)
    result[str(batch)] = summarize(times)["p50"]
print(json.dumps(result))
"""


def _burn(stop: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def measure(name: str, variant: str, config: tuple, seconds: float, busy: bool) -> dict[str, float]:
    _, backend, threads, spinning = config
    stop = multiprocessing.Event()
    burner = multiprocessing.Process(target=_burn, args=(stop,), daemon=True) if busy else None
    if burner:
        burner.start()
        time.sleep(0.2)
    try:
        args = [name, variant, backend, str(threads), str(spinning), str(seconds)]
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, check=True, timeout=600
        )
    finally:
        if burner:
            stop.set()
            burner.join(5)
    return json.loads(out.stdout.strip().splitlines()[-1])


def sweep(name: str, variant: str, seconds: float, rounds: int) -> dict[tuple[str, bool], dict[str, float]]:
    runs: dict[tuple[str, bool], list[dict[str, float]]] = {}
    for _ in range(rounds):
        for busy in (False, True):
            for config in CONFIGS:
                runs.setdefault((config[0], busy), []).append(measure(name, variant, config, seconds, busy))
    return {key: {b: statistics.median(r[b] for r in results) for b in results[0]} for key, results in runs.items()}


def markdown(name: str, variant: str, table: dict[tuple[str, bool], dict[str, float]]) -> str:
    lines = [
        f"**{name}** ({variant} file; p50 ms, median of rounds; × = vs the row's condition's fastest)",
        "",
        "| configuration | idle b1 | idle b64 | busy b1 | busy b64 |",
        "|---|---|---|---|---|",
    ]
    best = {
        (busy, b): min(v[b] for (_, bz), v in table.items() if bz == busy)
        for busy in (False, True)
        for b in ("1", "64")
    }
    for label, *_ in CONFIGS:
        cells = [
            f"{table[label, busy][b]:.3f} ({table[label, busy][b] / best[busy, b]:.2f}×)"
            for busy in (False, True)
            for b in ("1", "64")
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", default="keras_same,convnet5,fashion_bn", help="comma-separated zoo names")
    parser.add_argument("--variants", default="fp32,int8", help="zoo variants to sweep")
    parser.add_argument("--seconds", type=float, default=1.5, help="timed seconds per batch size and run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--markdown", type=Path, default=None, help="also write the tables to FILE")
    args = parser.parse_args(argv)
    parts = []
    for name in args.nets.split(","):
        for variant in args.variants.split(","):
            text = markdown(name, variant, sweep(name, variant, args.seconds, args.rounds))
            print(text, flush=True)
            parts.append(text)
    if args.markdown:
        args.markdown.write_text("\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
