#!/usr/bin/env python
"""Accuracy of every ``fit`` mode on photo-like framings of real test images (edgecnn.bench.framings):
4:3 frames, light backgrounds, white margins, small off-centre subjects, phone-like JPEGs with uneven
light. The default fit must keep ≥ 95 % of the accuracy on the original 28×28 images in every framing
(tests/runtime/test_framing.py asserts it on smaller samples).

    .venv/bin/python tools/framing_table.py [MODEL.onnx ...] [--samples 2000] [--runs runs/framing]

Without models it trains fashion_bn one epoch on MNIST and on Fashion-MNIST (seed 0) into --runs and
exports them fp32. Each model is evaluated on the test split of the dataset its card names.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

from edgecnn.bench.fitting import measure_fits
from edgecnn.config import ExportConfig, TrainConfig
from edgecnn.export.from_checkpoint import export_checkpoint
from edgecnn.runtime import Predictor
from edgecnn.training.data import load_dataset
from edgecnn.training.loop import fit


def default_models(runs: Path) -> list[Path]:
    models = []
    for dataset in ("mnist", "fashion-mnist"):
        out = runs / dataset
        if not (out / "model.onnx").is_file():
            print(f"# training fashion_bn on {dataset} for one epoch -> {out}", flush=True)
            fit(TrainConfig(arch="fashion_bn", dataset=dataset, epochs=1, seed=0, device="cpu"), out)
            export_checkpoint(out, out / "model.onnx", ExportConfig(latency_iters=20))
        models.append(out / "model.onnx")
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--samples", type=int, default=2000, help="test images per framing")
    parser.add_argument("--runs", type=Path, default=Path("runs/framing"))
    args = parser.parse_args()
    print(
        f"# {platform.processor() or platform.machine()}; command: tools/framing_table.py "
        f"{' '.join(map(str, args.models))} --samples {args.samples}",
        flush=True,
    )
    for model in args.models or default_models(args.runs):
        predictor = Predictor(model)
        data = load_dataset(predictor.card.dataset)
        images = data.test_images[: args.samples, 0].numpy()
        table = measure_fits(predictor, images, data.test_labels[: args.samples].numpy())
        print(table.format() + "\n", flush=True)


if __name__ == "__main__":
    main()
