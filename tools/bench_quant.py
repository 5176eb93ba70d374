#!/usr/bin/env python
"""Quantization benchmark: the six seed nets after one epoch, five variants each, measured in one run.

Variants: fp32; the textbook recipe (onnxruntime ``quantize_dynamic`` with every default); edgecnn's
``dynamic``, ``static`` and what ``auto`` chose. File size and accuracy on the full test set; p50
latency at batch 1 and 64 with all variants of a net interleaved in short blocks (edgecnn.bench), so
the machine's drift hits them alike; sessions do not spin, so they do not steal each other's cores.
Ratios are to fp32 of the same run.

    .venv/bin/python tools/bench_quant.py [--runs runs/bench] [--iters 300] [--archs a,b] [--markdown F]

Checkpoints come from ``--runs/ARCH`` and are trained there (one epoch, seed 0) when missing:
mnist_cnn3, convnet5 and keras_conv2 on MNIST (their tutorials' data), the others on Fashion-MNIST.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from seednets import SEED_NETS, checkpoint_for  # tools/seednets.py

from edgecnn.config import ExportConfig
from edgecnn.export.from_checkpoint import export_checkpoint
from edgecnn.export.graphs import strip_value_info
from edgecnn.export.quantize import quiet_quantizer_logs
from edgecnn.export.to_onnx import export_onnx
from edgecnn.runtime.backends import onnxruntime_engine
from edgecnn.runtime.preprocess import normalize
from edgecnn.runtime.session import open_session
from edgecnn.runtime.timing import measure_interleaved, summarize
from edgecnn.training.checkpoint import load_checkpoint
from edgecnn.training.data import load_dataset_for


def textbook(fp32: Path, dst: Path) -> str:
    """What the tutorials do: quantize_dynamic(in, out) with every default. On torch's exported graphs
    it trips onnxruntime#25890 unless the shape annotations are dropped first; report both."""
    from onnxruntime.quantization import quantize_dynamic

    try:
        quantize_dynamic(str(fp32), str(dst))
        return "as is"
    except Exception as exc:  # noqa: BLE001 — we report whatever the textbook call raises
        note = f"fails as is ({type(exc).__name__}); measured after dropping value_info"
    stripped = dst.with_name("stripped.onnx")
    strip_value_info(fp32, stripped)
    quantize_dynamic(str(stripped), str(dst))
    return note


def accuracy(path: Path, inputs: np.ndarray, labels: np.ndarray) -> float:
    session = open_session(path, spinning=False)
    logits = np.concatenate([session.run(None, {"input": inputs[i : i + 500]})[0] for i in range(0, len(inputs), 500)])
    return float((logits.argmax(1) == labels).mean())


def bench_net(arch: str, runs: Path, iters: int, work: Path) -> list[dict]:
    ckpt = checkpoint_for(arch, runs)
    saved = load_checkpoint(ckpt)
    data = load_dataset_for(saved.config)
    norm = saved.card.normalization
    inputs = normalize(data.test_images.numpy(), norm.mean, norm.std)
    labels = data.test_labels.numpy()
    fp32 = export_onnx(saved.build_model(), work / f"{arch}.fp32.onnx", input_shape=saved.card.input_shape)
    paths = {"fp32": fp32}
    with quiet_quantizer_logs():  # onnxruntime's root-logger advice, kept off the terminal as edgecnn does
        note = textbook(paths["fp32"], work / f"{arch}.textbook.onnx")
    paths["textbook"] = work / f"{arch}.textbook.onnx"
    chosen = {}
    for mode in ("dynamic", "static", "auto"):
        out = work / f"{arch}.{mode}.onnx"
        report = export_checkpoint(ckpt, out, ExportConfig(quantize=mode, latency_iters=100))
        paths[mode], chosen[mode] = out, report.mode
    runs = {
        name: onnxruntime_engine(open_session(path, spinning=False), "cpu", None).run for name, path in paths.items()
    }
    rows = {
        name: {"variant": name, "size": path.stat().st_size, "accuracy": accuracy(path, inputs, labels)}
        for name, path in paths.items()
    }
    for batch, n in ((1, iters), (64, max(20, iters // 5))):
        x = np.ascontiguousarray(inputs[:batch])
        samples = measure_interleaved(runs, dict.fromkeys(runs, x), iters=n)
        for name, times in samples.items():
            rows[name][f"b{batch}"] = summarize(times)["p50"]
    rows["auto"]["variant"] = f"auto → {chosen['auto']}"
    rows["textbook"]["note"] = note
    return list(rows.values())


def table(arch: str, rows: list[dict]) -> str:
    base = rows[0]
    lines = [
        f"**{arch}**" + (f" (textbook: {rows[1]['note']})" if rows[1]["note"] != "as is" else ""),
        "",
        "| variant | file | × fp32 | test acc. | Δ pp | batch 1 p50 ms | × fp32 | batch 64 p50 ms | × fp32 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['size'] / 1e3:,.0f} kB | {r['size'] / base['size']:.2f} | "
            f"{r['accuracy']:.2%} | {(r['accuracy'] - base['accuracy']) * 100:+.2f} | {r['b1']:.4f} | "
            f"{r['b1'] / base['b1']:.2f} | {r['b64']:.3f} | {r['b64'] / base['b64']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/bench"))
    parser.add_argument("--iters", type=int, default=300, help="timed iterations at batch 1 (batch 64: a fifth)")
    parser.add_argument("--archs", default=",".join(SEED_NETS))
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    args = parser.parse_args()
    header = (
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"onnxruntime {ort.__version__}, numpy {np.__version__}, python {platform.python_version()}"
    )
    print(f"# {header}", flush=True)
    parts = [f"Command: `.venv/bin/python tools/bench_quant.py {' '.join(sys.argv[1:])}`".strip(), "", header, ""]
    with tempfile.TemporaryDirectory(prefix="edgecnn-bench-") as tmp:
        for arch in args.archs.split(","):
            text = table(arch, bench_net(arch, args.runs, args.iters, Path(tmp)))
            print(text + "\n", flush=True)
            parts += [text, ""]
    if args.markdown:
        args.markdown.write_text("\n".join(parts))


if __name__ == "__main__":
    main()
