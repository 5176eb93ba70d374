"""Backend × precision × threads on the zoo's files: onnxruntime and OpenVINO side by side, one run per net.

    .venv/bin/python tools/bench_backends.py [--nets keras_same,convnet5] [--markdown FILE]

Per net, every configuration below is opened as a device app opens it (``Predictor(..., backend=,
precision=, threads=)``) and timed through ``Predictor.logits`` — all of them interleaved in one run
(``edgecnn.bench.timing.measure_interleaved``: blocks of 10, so drift hits all alike), at batch 1 and 64,
with 1 and 2 threads. onnxruntime sessions do not spin (they take turns on 2 cores). Each configuration's
answers are compared with onnxruntime fp32's on 1,000 real test images: top-1 agreement and max |Δlogit|.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from edgecnn.bench.environment import environment
from edgecnn.bench.timing import measure_interleaved, summarize
from edgecnn.runtime import Predictor
from edgecnn.runtime.zoo import list_zoo

CONFIGS = (  # label, zoo variant, backend, precision
    ("onnxruntime fp32", "fp32", "onnxruntime", None),
    ("onnxruntime int8", "int8", "onnxruntime", None),
    ("openvino f32", "fp32", "openvino", None),
    ("openvino bf16", "fp32", "openvino", "bf16"),
    ("openvino int8", "int8", "openvino", None),
)
THREADS = (1, 2)
ITERS = {1: 300, 64: 40}


class _Timed:
    """What measure_interleaved times: ``run(None, feed)`` → ``Predictor.logits``."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor

    def run(self, _names, feed):
        return self.predictor.logits(feed["x"])


def _test_images(dataset: str, count: int = 1000) -> np.ndarray:
    from edgecnn.export.labelled import load_labelled  # torch-free IDX reader

    return load_labelled(dataset, shape=(1, 28, 28)).test_images[:count]


def measure_net(name: str, images: np.ndarray) -> list[dict]:
    predictors = {}
    for label, variant, backend, precision in CONFIGS:
        for threads in THREADS:
            options = {"backend": backend, "threads": threads}
            options.update(
                {"precision": precision} if precision else {"spinning": False} if backend == "onnxruntime" else {}
            )
            predictors[label, threads] = Predictor.from_zoo(name, variant, **options)
    reference = predictors["onnxruntime fp32", 1]
    x = reference.prepare(images[:, 0], fit="stretch")
    ref = reference.logits(x)
    rows = {key: {"config": key[0], "threads": key[1], "precision": p.precision} for key, p in predictors.items()}
    for key, p in predictors.items():
        logits = p.logits(x)
        rows[key]["agreement"] = float((logits.argmax(1) == ref.argmax(1)).mean())
        rows[key]["max_delta"] = float(np.abs(logits - ref).max())
    for batch, iters in ITERS.items():
        feeds = {f"{k[0]}|{k[1]}": {"x": np.ascontiguousarray(np.resize(x, (batch, *x.shape[1:])))} for k in predictors}
        timed = {f"{k[0]}|{k[1]}": _Timed(p) for k, p in predictors.items()}
        samples = measure_interleaved(timed, feeds, iters=iters, warmup=5)
        for key in predictors:
            rows[key][f"b{batch}"] = summarize(samples[f"{key[0]}|{key[1]}"])["p50"]
    return list(rows.values())


def markdown(name: str, dataset: str, rows: list[dict]) -> str:
    base = {r["threads"]: r for r in rows if r["config"] == "onnxruntime fp32"}
    lines = [
        f"**{name}** ({dataset})",
        "",
        "| configuration | threads | runs in | b1 p50 ms | × ort fp32 | b64 p50 ms | × ort fp32 | top-1 agreement "
        "| max abs Δlogit |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = base[r["threads"]]
        lines.append(
            f"| {r['config']} | {r['threads']} | {r['precision']} | {r['b1']:.3f} | {r['b1'] / b['b1']:.2f} | "
            f"{r['b64']:.3f} | {r['b64'] / b['b64']:.2f} | {100 * r['agreement']:.2f} % | {r['max_delta']:.2g} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", default=None, help="comma-separated zoo names (default: all)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the tables to FILE")
    args = parser.parse_args(argv)
    zoo = {row.name: row for row in list_zoo()}
    names = args.nets.split(",") if args.nets else list(zoo)
    env = environment()
    parts = [
        f"{env['cpu']}, {env['cores']} cores ({', '.join(env['cpu_flags'])}), onnxruntime {env['onnxruntime']}, "
        f"openvino {__import__('openvino').__version__.split('-')[0]}, Python {env['python']}\n"
    ]
    for name in names:
        text = markdown(name, zoo[name].dataset, measure_net(name, _test_images(zoo[name].dataset)))
        print(text, flush=True)
        parts.append(text)
    if args.markdown:
        args.markdown.write_text("\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
