"""Backend × precision × threads on the zoo's files, with auto's choice and issue 12's goals, for
``tools/benchmarks.py --section backends`` (which writes the tables into BENCHMARKS.md).

Per net, every configuration is opened as a device app opens it (``Predictor(..., backend=, precision=,
threads=)``) and timed through ``Predictor.logits`` — all interleaved in one run
(``edgecnn.runtime.timing.measure_interleaved``: blocks of 10, so drift hits all alike), at batch 1 and 64,
with 1 and 2 threads; onnxruntime sessions do not spin (they take turns on the cores). "auto" is the file
``edgecnn quantize zoo:NAME --batch-size-hint 64`` wrote, run by ``Predictor(backend="auto")`` (the
configuration auto recorded); "bare" is that configuration's engine called directly (onnxruntime's
``session.run``, OpenVINO's infer request), the floor ``Predictor.logits`` is held to. Answers are compared
with onnxruntime fp32's on 2,000 real test images: top-1 agreement, max |Δlogit|, accuracy drop, and the
gates of the precision each configuration runs in decide which "pass".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.runtime import Predictor
from edgecnn.runtime.gates import gates_for_precision
from edgecnn.runtime.timing import measure_interleaved, summarize

CONFIGS = (  # label, zoo variant, backend, precision
    ("onnxruntime fp32", "fp32", "onnxruntime", None),
    ("onnxruntime int8", "int8", "onnxruntime", None),
    ("openvino f32", "fp32", "openvino", None),
    ("openvino bf16", "fp32", "openvino", "bf16"),
    ("openvino int8", "int8", "openvino", None),
)
THREADS = (1, 2)
ITERS = {1: 300, 64: 40}
INT8_GOAL_NETS = ("convnet5", "mnist_cnn3", "keras_same")
BARE = "bare call of auto's choice"


def _bare(predictor: Predictor) -> Any:
    """The chosen configuration's engine without the Predictor: what its backend's own API costs."""
    engine = predictor.engine
    if engine.backend == "onnxruntime":
        session = engine.handle
        output, name = [session.get_outputs()[0].name], session.get_inputs()[0].name
        return lambda x: session.run(output, {name: x})[0]
    request = engine.handle.create_infer_request()
    return lambda x: request.infer({0: x}, share_inputs=True)[0]


def open_configs(name: str, auto_file: Path) -> dict[tuple[str, int], Any]:
    calls = {}
    for threads in THREADS:
        for label, variant, backend, precision in CONFIGS:
            options = {"backend": backend, "threads": threads, "precision": precision}
            options.update({"spinning": False} if backend == "onnxruntime" else {})
            calls[label, threads] = Predictor.from_zoo(name, variant, **options)
        spin = {"spinning": False}
        auto = Predictor(auto_file, threads=threads, **spin)
        calls[f"auto → {auto.backend} {auto.precision}", threads] = auto
        calls[BARE, threads] = _bare(auto)
    return calls


def measure_net(name: str, auto_file: Path, images: np.ndarray, labels: np.ndarray) -> list[dict]:
    calls = open_configs(name, auto_file)
    reference = calls["onnxruntime fp32", 1]
    x = reference.prepare(images[:, 0], fit="stretch")
    ref = reference.logits(x)
    rows = {}
    for key, call in calls.items():
        logits = (call.logits if isinstance(call, Predictor) else call)(x)
        precision = call.precision if isinstance(call, Predictor) else rows[_auto_key(rows, key[1])]["precision"]
        rows[key] = _accuracy_row(key, precision, logits, ref, labels)
    for batch, iters in ITERS.items():
        xb = np.ascontiguousarray(np.resize(x, (batch, *x.shape[1:])))
        runs = {f"{k[0]}|{k[1]}": c.logits if isinstance(c, Predictor) else c for k, c in calls.items()}
        samples = measure_interleaved(runs, dict.fromkeys(runs, xb), iters=iters, warmup=5)
        for key in calls:
            rows[key][f"b{batch}"] = summarize(samples[f"{key[0]}|{key[1]}"])["p50"]
    return list(rows.values())


def _auto_key(rows: dict, threads: int) -> tuple[str, int]:
    return next(k for k in rows if k[0].startswith("auto → ") and k[1] == threads)


def _accuracy_row(key: tuple[str, int], precision: str, logits, ref, labels) -> dict:
    agreement = float((logits.argmax(1) == ref.argmax(1)).mean())
    max_delta = float(np.abs(logits - ref).max())
    accuracy, ref_accuracy = float((logits.argmax(1) == labels).mean()), float((ref.argmax(1) == labels).mean())
    failures = gates_for_precision(precision, 0.3).failures(
        max_abs=max_delta, agreement=agreement, reference_accuracy=ref_accuracy, accuracy=accuracy
    )
    return {
        "config": key[0],
        "threads": key[1],
        "precision": precision,
        "agreement": agreement,
        "max_delta": max_delta,
        "drop_pp": (ref_accuracy - accuracy) * 100,
        "passes": not failures,
    }


def markdown(name: str, dataset: str, rows: list[dict]) -> str:
    base = {r["threads"]: r for r in rows if r["config"] == "onnxruntime fp32"}
    lines = [
        f"**{name}** ({dataset})",
        "",
        "| configuration | threads | runs in | b1 p50 ms | × ort fp32 | b64 p50 ms | × ort fp32 | top-1 agreement "
        "| max abs Δlogit | Δacc pp | passes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = base[r["threads"]]
        lines.append(
            f"| {r['config']} | {r['threads']} | {r['precision']} | {r['b1']:.3f} | {r['b1'] / b['b1']:.2f} | "
            f"{r['b64']:.3f} | {r['b64'] / b['b64']:.2f} | {100 * r['agreement']:.2f} % | {r['max_delta']:.2g} | "
            f"{-r['drop_pp']:+.2f} | {'yes' if r['passes'] else 'no'} |"
        )
    return "\n".join(lines) + "\n\n" + goals(name, rows) + "\n"


def goals(name: str, rows: list[dict]) -> str:
    """Issue 12's goals, per thread count, from this net's rows (same run)."""
    out = []
    for threads in THREADS:
        mine = {r["config"]: r for r in rows if r["threads"] == threads}
        fp32 = mine["onnxruntime fp32"]
        auto = next(r for k, r in mine.items() if k.startswith("auto → "))
        passing = [r for k, r in mine.items() if r["passes"] and not k.startswith(("auto", "bare"))]
        fastest = min(passing, key=lambda r: r["b64"])
        int8, bare = mine["onnxruntime int8"], mine[BARE]
        text = (
            f"{threads} thread{'s' if threads > 1 else ''}: auto ({auto['config'][7:]}) vs onnxruntime fp32 "
            f"b1 {auto['b1'] / fp32['b1']:.2f}×, b64 {auto['b64'] / fp32['b64']:.2f}× (goal ≤ 1); vs the fastest "
            f"passing at b64 ({fastest['config']}) {auto['b64'] / fastest['b64']:.2f}× (goal ≤ 1.1); "
            f"Predictor.logits / bare call b1 {auto['b1'] / bare['b1']:.3f}× "
            f"(goal ≤ 1.05); onnxruntime int8 vs fp32 b64 {fp32['b64'] / int8['b64']:.2f}× faster, "
            f"Δacc {-int8['drop_pp']:+.2f} pp" + (" (goal ≥ 2×, ≤ 0.3 pp)" if name in INT8_GOAL_NETS else "")
        )
        out.append("- " + text)
    return "\n".join(out) + "\n"
