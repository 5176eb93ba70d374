#!/usr/bin/env python
"""Training throughput: edgecnn's trainer vs the seed tutorials' loop, same net, same threads, one run.

The tutorials' loop (the adventuresinmachinelearning ConvNet tutorial): a torchvision dataset with
ToTensor + Normalize, a DataLoader with batch 100 and shuffling, Adam at 1e-3, and the per-step accuracy
bookkeeping the tutorial prints. Ours: ``edgecnn.training.loop.fit`` (in-memory uint8 tensors, channels-last,
fused Adam). Rounds alternate between the two so drift in the machine's speed hits both alike; each
round starts from the same freshly initialised weights. Only training steps are timed (fit's
``samples_per_s`` excludes its test-set evaluation and file writes).

    .venv/bin/python tools/bench_train.py [--arch convnet5] [--rounds 5] [--samples 6000]

With ``--nproc 1,2``: instead, edgecnn's trainer in 1 process × all cores' threads vs N processes sharing the
cores (each cores/N threads, gloo, DDP), the same global batch, rounds alternating; each row a fresh
`edgecnn train --nproc-per-node N` (training steps timed, as above, plus the wall time with start-up), written
into BENCHMARKS.md ("Training in several processes") unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import tempfile
import time

import torch
from torch import nn
from torchvision import datasets, transforms

from edgecnn.config import TrainConfig
from edgecnn.training.architectures import create
from edgecnn.training.data import load_dataset, resolve_data_root
from edgecnn.training.loop import fit


def tutorial_loop(arch: str, root: str, samples: int, seed: int) -> float:
    """samples/s of the tutorials' loop for ``samples`` training images."""
    torch.manual_seed(seed)
    model = create(arch)
    train_set = datasets.MNIST(
        root,
        train=True,
        transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]),
    )
    loader = torch.utils.data.DataLoader(train_set, batch_size=100, shuffle=True)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    model.train()
    seen, correct = 0, 0
    started = time.perf_counter()
    for images, labels in loader:
        outputs = model(images)
        loss = criterion(outputs, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        _, predicted = torch.max(outputs.data, 1)
        correct += (predicted == labels).sum().item()
        seen += labels.size(0)
        if seen >= samples:
            break
    return seen / (time.perf_counter() - started)


def edgecnn_loop(arch: str, bundle, samples: int, seed: int) -> float:
    config = TrainConfig(
        arch=arch, dataset="mnist", epochs=1, batch_size=100, limit_train=samples, seed=seed, device="cpu"
    )
    with tempfile.TemporaryDirectory() as out:
        return fit(config, out, data=bundle).epochs[0]["samples_per_s"]


def processes_run(arch: str, samples: int, nproc: int, seed: int, batch: int) -> tuple[float, float]:
    """(samples/s of the training steps, wall seconds with start-up) of `edgecnn train --nproc-per-node`."""
    import json
    import subprocess

    with tempfile.TemporaryDirectory() as out:
        args = [
            "--arch",
            arch,
            "--dataset",
            "mnist",
            "--epochs",
            "1",
            "--limit-train",
            str(samples),
            "--seed",
            str(seed),
        ]
        args += ["--batch-size", str(batch), "--val-size", "0", "--device", "cpu", "--out", out]
        started = time.perf_counter()
        code = "import sys; from edgecnn.cli import main; sys.argv[0] = 'edgecnn'; main()"
        subprocess.run([sys.executable, "-c", code, "train", *args, "--nproc-per-node", str(nproc)], check=True)
        wall = time.perf_counter() - started
        with open(os.path.join(out, "metrics.json")) as file:
            return json.load(file)["epochs"][0]["samples_per_s"], wall


def processes_table(args: argparse.Namespace) -> str:
    counts = [int(n) for n in args.nproc.split(",")]
    rates: dict[int, list[float]] = {n: [] for n in counts}
    walls: dict[int, list[float]] = {n: [] for n in counts}
    for r in range(args.rounds):
        for n in counts:
            rate, wall = processes_run(args.arch, args.samples, n, r, args.batch_size)
            rates[n].append(rate)
            walls[n].append(wall)
            print(f"round {r + 1}: {n} process(es): {rate:,.0f} samples/s, {wall:.1f} s wall", flush=True)
    base = statistics.median(rates[counts[0]])
    lines = [
        f"`.venv/bin/python tools/bench_train.py --nproc {args.nproc} --arch {args.arch} --samples {args.samples} "
        f"--rounds {args.rounds}`; {os.cpu_count()} cores, torch {torch.__version__}, gloo; global batch "
        f"{args.batch_size}; medians of {args.rounds} alternating rounds.",
        "",
        "| processes | threads each | samples/s (training steps) | × 1 process | wall s (with start-up) |",
        "|---|---|---|---|---|",
    ]
    for n in counts:
        rate = statistics.median(rates[n])
        threads = max(1, (os.cpu_count() or 1) // n)
        lines.append(f"| {n} | {threads} | {rate:,.0f} | {rate / base:.2f} | {statistics.median(walls[n]):.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="convnet5")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=6000, help="training images per round and loop")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--nproc", default=None, help="e.g. 1,2: processes instead of the tutorial comparison")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.nproc:
        table = processes_table(args)
        print(table)
        if not args.no_write:
            from benchmarks import write_section

            write_section("train_nproc", "## Training in several processes", table)
        return
    root = str(resolve_data_root(args.data_root))
    bundle = load_dataset("mnist", data_root=root)
    # fit evaluates on the test set after the epoch; a slice keeps rounds short (it is not timed)
    bundle = dataclasses.replace(bundle, test_images=bundle.test_images[:500], test_labels=bundle.test_labels[:500])
    print(
        f"# {args.arch} on MNIST, batch 100, Adam; torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads, {os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        flush=True,
    )
    ours, theirs = [], []
    for r in range(args.rounds):
        theirs.append(tutorial_loop(args.arch, root, args.samples, seed=r))
        ours.append(edgecnn_loop(args.arch, bundle, args.samples, seed=r))
        print(
            f"round {r + 1}: tutorial {theirs[-1]:8.1f} samples/s   edgecnn {ours[-1]:8.1f} samples/s   "
            f"ratio {ours[-1] / theirs[-1]:.2f}x",
            flush=True,
        )
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    print(
        f"median: tutorial {statistics.median(theirs):.1f} samples/s, edgecnn {statistics.median(ours):.1f} "
        f"samples/s, ratio {statistics.median(ratios):.2f}x (per-round ratios "
        f"{min(ratios):.2f}–{max(ratios):.2f}x)"
    )


if __name__ == "__main__":
    sys.exit(main())
