#!/usr/bin/env python
"""Training from an image folder: held in memory vs read from disk batch by batch (DataLoader workers), one run.

Writes a folder of PNG files from real Fashion-MNIST test images (``--images`` of them, enlarged to ``--side``
pixels, as a user's photos are larger than the 28×28 the net takes), then alternates rounds: load the folder
(the scan: every file decoded once) and train one epoch, held in memory (the default budget and workers) and
left on disk (``max_memory_gb=0``) with each worker count of ``--workers``. Reports the load seconds, the
training steps' samples/s, and whether every row's final weights equal the in-memory row's (they must: the
same files, pixels and batches). Writes BENCHMARKS.md ("Training from an image folder") unless ``--no-write``.

    .venv/bin/python tools/bench_folder.py [--images 6000] [--side 64] [--arch convnet5] [--rounds 3] [--workers 0,1,2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from edgecnn.config import TrainConfig
from edgecnn.data.builtin import FASHION_CLASSES, read_builtin
from edgecnn.training.data import default_workers, load_dataset
from edgecnn.training.loop import fit


def write_folder(root: Path, count: int, side: int, data_root: str | None) -> None:
    data = read_builtin("fashion-mnist", "test", data_root)
    for name in FASHION_CLASSES:
        (root / name.replace("/", "-")).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        folder = root / FASHION_CLASSES[int(data.labels[i])].replace("/", "-")
        Image.fromarray(data.images[i, 0]).resize((side, side), Image.BICUBIC).save(folder / f"{i:05d}.png")


def one_row(root: Path, args: argparse.Namespace, budget: float | None, workers: int, seed: int) -> dict:
    started = time.perf_counter()
    data = load_dataset(str(root), image_size=28, max_memory_gb=budget, workers=workers, seed=seed)
    load_seconds = time.perf_counter() - started
    config = TrainConfig(
        arch=args.arch, dataset=str(root), epochs=1, batch_size=100, val_size=0, seed=seed, device="cpu",
        max_memory_gb=budget, workers=workers,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as out:
        result = fit(config, out, data=data)
    weights = {k: v.clone() for k, v in result.model.state_dict().items()}
    return {"load": load_seconds, "rate": result.epochs[0]["samples_per_s"], "w": weights}


def table(args: argparse.Namespace, root: Path) -> str:
    rows = [("memory", None, default_workers())] + [("disk", 0.0, int(w)) for w in args.workers.split(",")]
    found: dict[tuple, list[dict]] = {row: [] for row in rows}
    for r in range(args.rounds):
        for row in rows:
            found[row].append(one_row(root, args, row[1], row[2], seed=r))
            last = found[row][-1]
            print(f"round {r + 1}: {row[0]} workers {row[2]}: load {last['load']:.2f} s, {last['rate']:,.0f} samples/s")
    base = statistics.median(x["rate"] for x in found[rows[0]])
    lines = [
        f"`.venv/bin/python tools/bench_folder.py --images {args.images} --side {args.side} --arch {args.arch} "
        f"--rounds {args.rounds} --workers {args.workers}`; {os.cpu_count()} cores "
        f"({platform.processor() or platform.machine()}), torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads; PNG files {args.side}×{args.side} from Fashion-MNIST test images, trained at 28×28, batch 100; "
        f"medians of {args.rounds} alternating rounds.",
        "",
        "| pixels | workers | load s (scan) | samples/s (training steps) | × in memory | same weights |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        runs = found[row]
        same = all(
            all(torch.equal(a["w"][k], b["w"][k]) for k in a["w"]) for a, b in zip(runs, found[rows[0]], strict=True)
        )
        rate = statistics.median(x["rate"] for x in runs)
        where = "in memory" if row[0] == "memory" else "from disk"
        lines.append(
            f"| {where} | {row[2]} | {statistics.median(x['load'] for x in runs):.2f} | {rate:,.0f} | "
            f"{rate / base:.2f} | {'yes' if same else 'NO'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--arch", default="convnet5")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", default="0,1,2", help="worker counts for the rows read from disk")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "photos"
        write_folder(root, args.images, args.side, args.data_root)
        text = table(args, root)
    print(text)
    if not args.no_write:
        from benchmarks import write_section

        write_section("train_folder", "## Training from an image folder", text)


if __name__ == "__main__":
    sys.exit(main())
