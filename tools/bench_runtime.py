#!/usr/bin/env python
"""Runtime overhead and cold start: edgecnn's Predictor vs raw onnxruntime vs torch eager, one run.

1. ``Predictor.logits`` vs ``InferenceSession.run`` of the same session on the same batch-1 input
   (the wrapper's validation cost), interleaved in blocks.
2. ``Predictor.predict`` on a raw uint8 28×28 image (conversion, normalisation, softmax, top-k) vs the
   same raw ``run`` on already-normalised input.
3. Cold start in a fresh process — import, load the model, classify one PNG — and its peak RSS, for raw
   onnxruntime (PIL + numpy + onnxruntime, hand-written normalisation), the Predictor, and torch eager
   (the checkpoint through edgecnn.training.checkpoint). Processes alternate; medians are reported.

    .venv/bin/python tools/bench_runtime.py [--checkpoint runs/bench/fashion_bn] [--iters 2000] [--cold 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from edgecnn.bench.environment import cold_start
from edgecnn.config import ExportConfig, TrainConfig
from edgecnn.export.from_checkpoint import export_checkpoint
from edgecnn.files import checkpoint_path
from edgecnn.runtime import Predictor
from edgecnn.runtime.timing import measure_interleaved, summarize
from edgecnn.training.checkpoint import load_checkpoint
from edgecnn.training.data import load_dataset_for

COLD = {
    "raw onnxruntime": """
import sys, numpy as np, onnxruntime as ort
from PIL import Image
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
pixels = np.asarray(Image.open(sys.argv[2]).convert("L"), dtype=np.float32)[None, None] / 255
x = ((pixels - np.float32(MEAN)) / np.float32(STD)).astype(np.float32)
print(int(session.run(None, {"input": x})[0].argmax()))
""",
    "edgecnn Predictor": """
import sys
from edgecnn.runtime.preprocess import load_image
from edgecnn.runtime import Predictor
print(Predictor(sys.argv[1]).predict(load_image(sys.argv[2]))[0].index)
""",
    "torch eager": """
import sys, numpy as np, torch
from PIL import Image
from edgecnn.training.checkpoint import load_checkpoint
model = load_checkpoint(sys.argv[3]).build_model()
pixels = torch.from_numpy(np.asarray(Image.open(sys.argv[2]).convert("L"), dtype=np.float32))[None, None] / 255
with torch.no_grad():
    print(int(model((pixels - MEAN) / STD).argmax()))
""",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("runs/bench/fashion_bn"))
    parser.add_argument("--iters", type=int, default=2000)
    parser.add_argument("--cold", type=int, default=7, help="fresh processes per variant")
    args = parser.parse_args()
    if not checkpoint_path(args.checkpoint).is_file():
        from edgecnn.training.loop import fit

        fit(TrainConfig(arch="fashion_bn", dataset="fashion-mnist", epochs=1), args.checkpoint)
    saved = load_checkpoint(args.checkpoint)
    mean, std = saved.card.normalization.mean[0], saved.card.normalization.std[0]
    image = load_dataset_for(saved.config).test_images[0, 0].numpy()
    print(
        f"# {saved.card.arch} ({args.checkpoint}); {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, onnxruntime {ort.__version__}, numpy {np.__version__}, "
        f"python {platform.python_version()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="edgecnn-rt-") as tmp:
        model, png = Path(tmp) / "model.onnx", Path(tmp) / "digit.png"
        export_checkpoint(args.checkpoint, model, ExportConfig(parity_samples=1000, latency_iters=5))
        Image.fromarray(image).save(png)
        predictor = Predictor(model)
        x = predictor.prepare(image)
        raw = predictor.session  # the very session the Predictor runs: only the wrapper differs
        # each variant is called as measure_interleaved calls an engine: run(x)
        variants = {
            "raw run": lambda x: raw.run(None, {"input": x}),
            "Predictor.logits": predictor.logits,
            "Predictor.predict(uint8)": lambda _: predictor.predict(image),
        }
        samples = measure_interleaved(variants, dict.fromkeys(variants, x), iters=args.iters)
        base = summarize(samples["raw run"])["p50"]
        print("\nbatch-1 call, p50 (µs) and ratio to the raw run")
        for name, times in samples.items():
            stats = summarize(times)
            print(
                f"  {name:<26} p50 {stats['p50'] * 1e3:8.1f}  p90 {stats['p90'] * 1e3:8.1f}  ×{stats['p50'] / base:.3f}"
            )
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in COLD}
        for _ in range(args.cold):
            for name, script in COLD.items():
                code = script.replace("MEAN", repr(mean)).replace("STD", repr(std))
                runs[name].append(cold_start(code, [str(model), str(png), str(args.checkpoint)]))
    base_wall = statistics.median(w for w, _ in runs["raw onnxruntime"])
    base_rss = statistics.median(r for _, r in runs["raw onnxruntime"])
    print(f"\ncold start (fresh process: import + load + classify one PNG), median of {args.cold}")
    for name, values in runs.items():
        wall, rss = statistics.median(w for w, _ in values), statistics.median(r for _, r in values)
        print(
            f"  {name:<18} {wall * 1e3:7.0f} ms (×{wall / base_wall:.2f})   peak RSS {rss:6.1f} MiB "
            f"(×{rss / base_rss:.2f})"
        )


if __name__ == "__main__":
    main()
