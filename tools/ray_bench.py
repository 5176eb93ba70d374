"""Serving and batch prediction on Ray vs one process, measured side by side on this machine (loopback only).

    .venv/bin/python tools/ray_bench.py [--model zoo:keras_same] [--clients 1,8,32,64] [--seconds 8]
        [--batch-model zoo:fashion_bn] [--images 10000] [--quick] [--no-write]

Serving: for each engine — `edgecnn serve` in one process, then `--engine ray` with 1 and 2 replicas — one
server is started (its start-up time measured from the command to the line announcing its URL), then takes
``--seconds`` of closed-loop load at each client count from tools/load_client.py (the `infer` route, binary
FP32, one real Fashion-MNIST test image per request, every answer checked against the Predictor's; batching
on, the server's defaults), then SIGTERM (it must exit 0). Ray Serve's proxy is one more process and one more
hop per request than the single-process server; the difference between "process" and "ray, 1 replica" is that
hop's price here. The last engine is Ray's own `serve run edgecnn.cluster.serving:build_app … replicas=2
batching=serve`: the same application with Ray Serve's ``@serve.batch`` in each replica instead of edgecnn's
batcher. Batch prediction: the first ``--images`` Fashion-MNIST test images written as PNG files,
classified into a Parquet file by `edgecnn predict --output` in one process and with `--engine ray` (1 and 2
actors); images/s over the whole command (start-up included) and the rows checked (one per file).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from load_client import drive
from load_test import start_server, workload
from PIL import Image

from edgecnn.data.builtin import read_builtin
from edgecnn.runtime import Predictor
from edgecnn.runtime.timing import summarize

REPO = Path(__file__).resolve().parents[1]
ENGINES = {
    "process": [],
    "ray, 1 replica": ["--engine", "ray"],
    "ray, 2 replicas": ["--engine", "ray", "--replicas", "2"],
}
SERVE_BATCH = "ray, 2 replicas, @serve.batch"  # Ray's own `serve run` of build_app with Ray Serve's batching
SERVE_PORT = 8000  # where `serve run` puts Serve's proxy (it takes no port)


def serve_rows(args: argparse.Namespace, requests: list, clients: list[int]) -> tuple[list[dict], dict[str, float]]:
    rows, startup = [], {}
    for engine in [*ENGINES, SERVE_BATCH]:
        started = time.perf_counter()
        process, port = _start(engine, args, len(clients) * args.seconds + 240)
        startup[engine] = time.perf_counter() - started
        for count in clients:
            outcome = asyncio.run(drive(port, requests, count, args.seconds))
            stats = summarize(outcome.latencies) if outcome.latencies else {"p50": 0.0, "p99": 0.0}
            row = {"engine": engine, "clients": count, "rps": outcome.answered / args.seconds, **stats}
            row.update(errors=outcome.errors, wrong=outcome.wrong, lost=outcome.lost)
            rows.append(row)
            print(_serve_row(row), flush=True)
        process.send_signal(signal.SIGTERM)  # `serve run` too: it exits on SIGTERM (not on SIGINT without a terminal)
        rows[-1]["exit"] = process.wait(180)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        print(f"# {engine}: exit {rows[-1]['exit']}, start-up {startup[engine]:.1f} s", flush=True)
    return rows, startup


def _start(engine: str, args: argparse.Namespace, bound: float) -> tuple[subprocess.Popen, int]:
    """The server for ``engine``, and its port once it answers."""
    if engine in ENGINES:  # as tools/load_test.py starts it, with this engine's flags
        return start_server(args.model, ["--backend", "onnxruntime", "--queue", "1024", *ENGINES[engine]], bound)
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    env["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"] = "edgecnn.cluster.proxy:proxy_middlewares"
    serve_run = [str(Path(sys.executable).parent / "serve"), "run", "edgecnn.cluster.serving:build_app"]
    options = [f"models={args.model}", "replicas=2", "batching=serve", "backend=onnxruntime", "queue=1024"]
    process = subprocess.Popen(
        [*serve_run, *options, "access_log=off"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{SERVE_PORT}/v2/health/ready", timeout=5) as answer,
        ):
            if answer.status == 200:
                return process, SERVE_PORT
        time.sleep(0.5)
    sys.exit(f"`serve run` did not answer on {SERVE_PORT} (exit {process.poll()})")


def batch_rows(args: argparse.Namespace) -> list[dict]:
    import pyarrow.parquet as pq

    images = read_builtin("fashion-mnist", "test").images[: args.images, 0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgecnn-ray-bench-") as tmp:
        folder = Path(tmp) / "png"
        folder.mkdir()
        for i, image in enumerate(images):
            Image.fromarray(image).save(folder / f"{i:05d}.png")
        for engine, flags in {"process": [], **{k: v for k, v in ENGINES.items() if k != "process"}}.items():
            output = Path(tmp) / f"rows-{len(rows)}.parquet"
            command = [sys.executable, "-m", "edgecnn", "predict", args.batch_model, str(folder)]
            started = time.perf_counter()
            done = subprocess.run(
                [*command, "--output", str(output), "--backend", "onnxruntime", *flags],
                cwd=REPO,
                capture_output=True,
                text=True,
                start_new_session=True,
            )
            seconds = time.perf_counter() - started
            table = pq.read_table(output) if output.exists() else None
            files = table.column("file").to_pylist() if table is not None else []
            ok = done.returncode == 0 and len(files) == len(set(files)) == len(images)
            row = {"engine": engine.replace("replica", "actor"), "seconds": seconds, "ips": len(images) / seconds}
            rows.append({**row, "rows_ok": ok})
            print(_batch_row(rows[-1]), flush=True)
            if not ok:
                print(done.stderr[-2000:], file=sys.stderr)
    return rows


HEADER = "| engine | clients | req/s | p50 ms | p99 ms | errors | wrong | lost |"


def _serve_row(r: dict) -> str:
    return (
        f"| {r['engine']} | {r['clients']} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['errors']} "
        f"| {r['wrong']} | {r['lost']} |"
    )


def _batch_row(r: dict) -> str:
    return f"| {r['engine']} | {r['seconds']:.1f} | {r['ips']:.0f} | {'yes' if r['rows_ok'] else 'NO'} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="zoo:keras_same")
    parser.add_argument("--batch-model", default="zoo:fashion_bn")
    parser.add_argument("--clients", default="1,8,32,64")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="2 s runs at 1 and 8 clients, 500 images: a smoke check")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    if args.quick:
        args.seconds, clients, args.images = 2.0, [1, 8], 500
    predictor = Predictor(args.model, backend="onnxruntime")
    requests = workload(predictor, args.model.removeprefix("zoo:").split(":")[0], "infer")
    print(HEADER, flush=True)
    serving, startup = serve_rows(args, requests, clients)
    print("| engine | seconds | images/s | one row per file |", flush=True)
    batch = batch_rows(args)
    if not args.no_write:
        write(serving, startup, batch, args)


def write(serving: list[dict], startup: dict[str, float], batch: list[dict], args: argparse.Namespace) -> None:
    from benchmarks import _provenance, write_section

    from edgecnn.bench.environment import environment

    provenance = _provenance(environment()).replace("tools/benchmarks.py", "tools/ray_bench.py")
    starts = "; ".join(f"{engine} {seconds:.1f} s" for engine, seconds in startup.items())
    body = "\n".join(
        [
            provenance,
            "",
            __doc__.split("\n\n", 2)[2].strip(),
            "",
            f"Serving `{args.model}`, {args.seconds:g} s per row. Start-up, command to URL announced: {starts}.",
            "",
            HEADER,
            "|---" * 8 + "|",
            *map(_serve_row, serving),
            "",
            f"Batch prediction, `{args.batch_model}`, {args.images} PNG files, start-up included:",
            "",
            "| engine | seconds | images/s | one row per file |",
            "|---|---|---|---|",
            *map(_batch_row, batch),
        ]
    )
    write_section("ray", "## Serving and batch prediction on Ray", body)


if __name__ == "__main__":
    main()
