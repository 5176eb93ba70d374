"""Train and package the model zoo: ``models/NAME/`` for each seed net, ``models/index.json``, ``models/README.md``.

    .venv/bin/python tools/build_zoo.py                       # everything (≈1.5 h on 2 cores)
    .venv/bin/python tools/build_zoo.py --only fashion_bn     # one net
    .venv/bin/python tools/build_zoo.py --stage package       # re-package from finished runs
    .venv/bin/python tools/build_zoo.py --stage verify        # check every file on every target again

Stage ``train`` runs, per net, edgecnn's recipe and the tutorial's (tools/zoo_recipes.py) through
``edgecnn train`` into ``runs/zoo/NAME/RECIPE``; ``--jobs`` runs at a time, each with cores/jobs torch
threads. It is resumable: a finished run is kept, an interrupted one continues from its last epoch
(``--resume``). Stage ``package`` exports, quantizes (``auto``), measures and writes the cards
(tools/zoo_package.py); stage ``verify`` runs every ONNX file on every target (``edgecnn check --targets
all --record``, 2,000 test images) into the files' metadata, the cards and the README (tools/zoo_verify.py),
and exits 1 naming each failing file and target; stage ``latency`` measures the latency again into the cards
(run it on a quiet machine: nothing else running). ``all`` is train, package, verify.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from zoo_recipes import RECIPES, ZOO  # noqa: E402

from edgecnn.errors import EdgeCNNError, describe  # noqa: E402
from edgecnn.files import CHECKPOINT_NAME, METRICS_NAME  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def train_command(name: str, recipe: str, out: Path) -> list[str]:
    """The ``edgecnn train`` command line of one run (printed in the card as the way to rebuild it)."""
    args = [sys.executable, "-m", "edgecnn", "train", "--out", str(out)]
    for key, value in ZOO[name].recipe(recipe).items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def run_finished(out: Path, name: str, recipe: str) -> bool:
    metrics = out / METRICS_NAME
    if not metrics.is_file():
        return False
    saved = json.loads(metrics.read_text())["config"]
    return all(saved.get(k) == v for k, v in ZOO[name].recipe(recipe).items())


def train_one(name: str, recipe: str, runs: Path, threads: int) -> str:
    out = runs / name / recipe
    if run_finished(out, name, recipe):
        return f"{name}/{recipe}: finished earlier, kept"
    command = train_command(name, recipe, out) + ["--json"]
    if (out / CHECKPOINT_NAME).is_file():
        command.append("--resume")
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    print(f"# start {name}/{recipe}: {' '.join(command[1:])}", flush=True)
    with open(out / "train.log", "a") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    if done.returncode:
        return f"{name}/{recipe}: FAILED (exit {done.returncode}, see {out / 'train.log'})"
    metrics = json.loads((out / METRICS_NAME).read_text())
    return f"{name}/{recipe}: test {metrics['test_accuracy']:.2%} (epoch {metrics['best_epoch']})"


def train_all(names: list[str], runs: Path, jobs: int) -> bool:
    threads = max(1, (os.cpu_count() or 1) // jobs)
    # longest first, so the last job to finish is a short one
    order = sorted(((n, r) for n in names for r in RECIPES), key=lambda nr: -_cost(*nr))
    with ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(lambda nr: train_one(*nr, runs, threads), order))
    for line in results:
        print(line, flush=True)
    return not any("FAILED" in line for line in results)


def _cost(name: str, recipe: str) -> float:
    epoch_seconds = {"mnist_cnn3": 60, "convnet5": 60, "keras_conv2": 55, "keras_valid": 30, "fashion_bn": 20}
    settings = ZOO[name].recipe(recipe)
    return settings["epochs"] * epoch_seconds.get(name, 42) * (100 / settings["batch_size"]) ** 0.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=sorted(ZOO), help="one net (repeatable); default all")
    parser.add_argument("--stage", choices=("train", "package", "verify", "latency", "all"), default="all")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "zoo")
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--jobs", type=int, default=2, help="training runs at a time (default 2)")
    args = parser.parse_args(argv)
    try:
        return build(args)
    except EdgeCNNError as exc:  # a full disk or an unwritable models/ folder: one line, as edgecnn says it
        print(f"build_zoo: error: {exc}", file=sys.stderr)
    except OSError as exc:  # a run's train.log, or a folder, that cannot be made or written
        print(f"build_zoo: error: {exc.filename or 'a file'}: {exc.strerror or describe(exc)}", file=sys.stderr)
    return 1


def build(args: argparse.Namespace) -> int:
    names = args.only or list(ZOO)
    if args.stage in ("train", "all") and not train_all(names, args.runs, args.jobs):
        return 1
    if args.stage in ("package", "all"):
        from zoo_package import package_all

        package_all(names, args.runs, args.models)
    if args.stage in ("verify", "all"):
        from zoo_verify import verify_all

        failures = verify_all(names, args.models, args.runs / "verify")
        for line in failures:
            print(f"build_zoo: error: {line}", file=sys.stderr)
        if failures:
            return 1
    if args.stage == "latency":  # again, on a quiet machine, into the cards
        from zoo_package import remeasure_latency

        remeasure_latency(names, args.models)
    return 0


if __name__ == "__main__":
    sys.exit(main())
