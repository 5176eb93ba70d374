"""Latency you can trust: percentiles, throughput, session creation, first inference, cold start and
peak memory, with several models measured round-robin in one run and compared as ratios.

Microsecond-scale models are noisier than the differences between their variants; comparing two
variants measured minutes apart compares the machine's moods. Here the variants take turns in short
blocks (one untimed run, then ``block`` timed runs each): short enough that drift hits all alike, long
enough that each block runs with its own weights in cache, as a deployed model does. Sessions timed
side by side must not spin (see :func:`edgecnn.runtime.open_session`): measured on 2 cores, five
spinning sessions made mnist_cnn3's fp32 graph look 60 % slower than it runs alone.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["measure_interleaved", "summarize", "compare_latency", "environment", "cold_start", "run_bench",
           "format_report"]

Clock = Callable[[], float]


def measure_interleaved(sessions: Mapping[str, Any], feeds: Mapping[str, Mapping[str, np.ndarray]], *,
                        iters: int = 200, warmup: int = 10, block: int = 10, duration: float | None = None,
                        clock: Clock = time.perf_counter) -> dict[str, list[float]]:
    """Timings (seconds per ``session.run``) for each named session, taken in alternating blocks:
    ``iters`` each, or as many as fit in ``duration`` seconds for all together (at least one block)."""
    names = list(sessions)
    for _ in range(warmup):
        for name in names:
            sessions[name].run(None, feeds[name])
    samples: dict[str, list[float]] = {name: [] for name in names}
    started = clock()

    def more() -> bool:
        if duration is not None:
            return not samples[names[-1]] or clock() - started < duration
        return len(samples[names[-1]]) < iters

    while more():
        for name in names:
            session, feed, times = sessions[name], feeds[name], samples[name]
            session.run(None, feed)  # untimed: brings this variant's weights back into cache
            count = block if duration is not None else min(block, iters - len(times))
            for _ in range(count):
                start = clock()
                session.run(None, feed)
                times.append(clock() - start)
    return samples


def summarize(samples: list[float]) -> dict[str, float]:
    """Milliseconds: p50, p90, p99, mean, std, min, max (nearest-rank percentiles)."""
    ordered = sorted(samples)
    rank = lambda q: ordered[min(len(ordered) - 1, max(0, int(np.ceil(q * len(ordered))) - 1))]  # noqa: E731
    ms = 1e3
    return {"p50": rank(0.50) * ms, "p90": rank(0.90) * ms, "p99": rank(0.99) * ms,
            "mean": statistics.fmean(ordered) * ms,
            "std": (statistics.stdev(ordered) if len(ordered) > 1 else 0.0) * ms,
            "min": ordered[0] * ms, "max": ordered[-1] * ms}


def compare_latency(paths: Mapping[str, Any], feed: np.ndarray, *, input_name: str,
                    batch_sizes: tuple[int, ...] = (1, 32), iters: int = 200) -> dict[str, dict[str, float]]:
    """p50 milliseconds of each model file at each batch size, the models interleaved in one run."""
    from edgecnn.runtime import open_session

    sessions = {name: open_session(path, spinning=False) for name, path in paths.items()}
    result: dict[str, dict[str, float]] = {name: {} for name in paths}
    for batch in batch_sizes:
        x = np.ascontiguousarray(np.resize(feed, (batch, *feed.shape[1:])))
        samples = measure_interleaved(sessions, {name: {input_name: x} for name in sessions}, iters=iters)
        for name, times in samples.items():
            result[name][str(batch)] = round(summarize(times)["p50"], 5)
    return result


_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "asimd", "asimddp", "i8mm",
          "sve", "fp16")


def environment() -> dict[str, Any]:
    """CPU model and the flags int8/fp16 kernels care about, cores, and the versions that matter."""
    import onnxruntime as ort

    from edgecnn import __version__

    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip().lower(), value.strip())
    except OSError:  # not Linux: the platform module's answer stands
        pass
    # x86 names its CPU in "model name"; ARM boards in "Hardware" or "Model" (a Raspberry Pi's board name)
    cpu = fields.get("model name") or fields.get("hardware") or fields.get("model") or platform.processor() \
        or platform.machine()
    flags = set((fields.get("flags") or fields.get("features") or "").split())
    named = [f for f in _FLAGS if f in flags]
    if "asimd" in named:
        named[named.index("asimd")] = "neon"
    return {"cpu": cpu, "cpu_flags": named, "cores": os.cpu_count(), "machine": platform.machine(),
            "system": platform.platform(), "python": platform.python_version(), "numpy": np.__version__,
            "onnxruntime": ort.__version__, "edgecnn": __version__,
            "providers": ort.get_available_providers()}


# A child reports its own peak RSS: VmHWM belongs to the process image and starts afresh at exec,
# unlike ru_maxrss, which a forked child inherits from its (possibly large) parent.
_PEAK = "\nprint(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])\n"


def cold_start(script: str, args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one fresh Python process running ``script``."""
    from edgecnn.errors import EdgeCNNError

    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", script + _PEAK, *args], capture_output=True, text=True,
                          timeout=600)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise EdgeCNNError(f"cold-start process failed: {lines[-1] if lines else proc.returncode}")
    return wall, int(proc.stdout.split()[-1]) / 1024


def run_bench(models: list[str | os.PathLike[str]], config: Any, *, torch_checkpoint: str | None = None,
              log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Measure ``models`` (and torch eager, given a checkpoint) round-robin; every figure as a dict."""
    spinning = len(models) + (torch_checkpoint is not None) == 1
    subjects = [onnx_subject(Path(m), config, spinning=spinning) for m in models]
    if torch_checkpoint is not None:
        subjects.append(torch_subject(torch_checkpoint, config))
    names = [s.name for s in subjects]
    batches: dict[str, dict[str, Any]] = {}
    for batch in config.batch_sizes:
        log(f"batch {batch}: measuring {', '.join(names)}")
        samples = measure_interleaved({s.name: s for s in subjects}, {s.name: s.feed(batch) for s in subjects},
                                      iters=config.iters, warmup=config.warmup, duration=config.duration)
        rows = {}
        for name, times in samples.items():
            stats = summarize(times)
            rows[name] = {**stats, "samples": len(times), "throughput": batch * 1e3 / stats["mean"]}
        first = rows[names[0]]["p50"]
        for row in rows.values():
            row["ratio_p50"] = row["p50"] / first
        batches[str(batch)] = rows
    for subject in subjects:
        if config.cold_runs:
            log(f"cold start: {subject.name} ({config.cold_runs} fresh processes)")
            runs = [cold_start(*subject.cold_script()) for _ in range(config.cold_runs)]
            subject.info["cold_start_ms"] = statistics.median(w for w, _ in runs) * 1e3
            subject.info["peak_rss_mib"] = statistics.median(r for _, r in runs)
    return {"environment": environment(), "config": {**vars(config), "batch_sizes": list(config.batch_sizes)},
            "spinning": spinning, "models": [s.info for s in subjects], "batches": batches}


def format_report(result: dict[str, Any]) -> str:
    """The readable table of a :func:`run_bench` result: environment, models, one block per batch size."""
    env, models = result["environment"], result["models"]
    short = {m["name"]: f"m{i + 1}" for i, m in enumerate(models)}
    lines = [f"environment: {env['cpu']} ({env['machine']}), {env['cores']} cores, flags: "
             f"{' '.join(env['cpu_flags']) or 'none detected'}; onnxruntime {env['onnxruntime']}, edgecnn "
             f"{env['edgecnn']}, numpy {env['numpy']}, python {env['python']}; providers: {', '.join(env['providers'])}",
             "", f"{'':4}{'model':<44} {'kind':<12} {'size kB':>9} {'provider':>8} {'thr':>3} {'create ms':>9} "
             f"{'first ms':>8} {'cold ms':>8} {'RSS MiB':>8}"]
    for m in models:
        size = f"{m['file_bytes'] / 1e3:,.0f}" if m.get("file_bytes") else "-"
        kind = m["kind"] if m["kind"] == "torch" else f"ort {m['quantization']}"
        cold = f"{m['cold_start_ms']:.0f}" if "cold_start_ms" in m else "-"
        rss = f"{m['peak_rss_mib']:.1f}" if "peak_rss_mib" in m else "-"
        label = "torch eager" if m["kind"] == "torch" else m["name"]
        label = label if len(label) <= 44 else "…" + label[-43:]
        lines.append(f"{short[m['name']]:<4}{label:<44} {kind:<12} {size:>9} {m['provider']:>8} "
                     f"{m['threads']:>3} {m['session_create_ms']:>9.1f} {m['first_inference_ms']:>8.2f} {cold:>8} {rss:>8}")
    for batch, rows in result["batches"].items():
        lines += ["", f"batch {batch} (ms; ratio = p50 / p50 of m1)",
                  f"{'':4}{'p50':>9} {'p90':>9} {'p99':>9} {'mean':>9} {'std':>8} {'min':>9} {'max':>9} "
                  f"{'samples/s':>10} {'ratio':>6} {'n':>5}"]
        for name, r in rows.items():
            lines.append(f"{short[name]:<4}{r['p50']:>9.4f} {r['p90']:>9.4f} {r['p99']:>9.4f} {r['mean']:>9.4f} "
                         f"{r['std']:>8.4f} {r['min']:>9.4f} {r['max']:>9.4f} {r['throughput']:>10,.0f} "
                         f"{r['ratio_p50']:>6.2f} {r['samples']:>5}")
    if not result["spinning"]:
        lines += ["", "(several models side by side: onnxruntime sessions run without spinning threads)"]
    return "\n".join(lines)


class _Subject:
    """One thing under test: ``run(None, feed)`` like a session, its inputs, and what we know of it."""

    def __init__(self, name: str, run: Callable[[Any, Any], Any], feed: Callable[[int], dict[str, Any]],
                 info: dict[str, Any], cold: tuple[str, list[str]]) -> None:
        self.name, self.run, self.feed, self.info, self._cold = name, run, feed, info, cold

    def cold_script(self) -> tuple[str, list[str]]:
        return self._cold


_DTYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(float16)": np.float16}

_ONNX_COLD = """
import sys, numpy as np
from edgecnn.runtime import Predictor
predictor = Predictor(sys.argv[1], provider=sys.argv[2])
shape = [1] + [int(d) for d in sys.argv[3].split(",")]
predictor.logits(np.zeros(shape, dtype=sys.argv[4]))
"""


def onnx_subject(path: Path, config: Any, *, spinning: bool) -> _Subject:
    """An edgecnn model file, opened with the Predictor's provider rules; timed through its session."""
    from edgecnn.errors import ModelFileError
    from edgecnn.runtime import Predictor

    started = time.perf_counter()
    predictor = Predictor(path, provider=config.provider, threads=config.threads)
    created = time.perf_counter() - started  # what a device app pays: the Predictor as it comes
    if not spinning:  # several sessions take turns: reopen without busy-waiting worker threads
        from edgecnn.runtime import open_session

        providers = ("CUDAExecutionProvider", "CPUExecutionProvider") if predictor.provider == "cuda" else \
            ("CPUExecutionProvider",)
        predictor._session = open_session(path, providers=providers, threads=config.threads, spinning=False)
    graph_input = predictor._session.get_inputs()[0]
    dtype = _DTYPES.get(graph_input.type)
    if dtype is None:
        raise ModelFileError(f"{path}: cannot bench an input of type {graph_input.type}")
    shape = predictor.metadata.input.graph_shape
    rng = np.random.default_rng(0)

    def feed(batch: int) -> dict[str, Any]:
        if dtype == np.uint8:
            return {graph_input.name: rng.integers(0, 256, (batch, *shape), dtype=np.uint8)}
        return {graph_input.name: rng.standard_normal((batch, *shape)).astype(dtype)}

    session = predictor._session
    first_started = time.perf_counter()
    session.run(None, feed(1))
    first = time.perf_counter() - first_started
    info = {"name": str(path), "kind": "onnxruntime", "file_bytes": path.stat().st_size,
            "provider": predictor.provider, "threads": config.threads or os.cpu_count(),
            "quantization": predictor.metadata.quantization.get("mode"),
            "session_create_ms": created * 1e3, "first_inference_ms": first * 1e3}
    cold = (_ONNX_COLD, [str(path), predictor.provider, ",".join(map(str, shape)), np.dtype(dtype).name])
    return _Subject(str(path), session.run, feed, info, cold)


_TORCH_COLD = """
import sys, torch
from edgecnn.checkpoint import load_checkpoint, model_from_checkpoint
state = load_checkpoint(sys.argv[1])
with torch.inference_mode():
    model_from_checkpoint(state)(torch.zeros(1, *state["input_shape"]))
"""


def torch_subject(checkpoint: str, config: Any) -> _Subject:
    """torch eager on the CPU, from an edgecnn checkpoint (torch is imported only here)."""
    import torch

    from edgecnn.checkpoint import load_checkpoint, model_from_checkpoint

    if config.threads:
        torch.set_num_threads(config.threads)
    started = time.perf_counter()
    state = load_checkpoint(checkpoint)
    model = model_from_checkpoint(state)
    created = time.perf_counter() - started
    rng = np.random.default_rng(0)

    def feed(batch: int) -> dict[str, Any]:
        return {"input": rng.standard_normal((batch, *state["input_shape"])).astype(np.float32)}

    def run(_names: Any, inputs: dict[str, Any]) -> Any:
        with torch.inference_mode():
            return model(torch.from_numpy(inputs["input"]))

    first_started = time.perf_counter()
    run(None, feed(1))
    first = time.perf_counter() - first_started
    from edgecnn.checkpoint import CHECKPOINT_NAME

    weights = Path(checkpoint) / CHECKPOINT_NAME if Path(checkpoint).is_dir() else Path(checkpoint)
    info = {"name": f"torch eager ({checkpoint})", "kind": "torch", "file_bytes": weights.stat().st_size,
            "provider": "cpu", "threads": torch.get_num_threads(),
            "quantization": "none", "session_create_ms": created * 1e3, "first_inference_ms": first * 1e3}
    return _Subject(info["name"], run, feed, info, (_TORCH_COLD, [str(checkpoint)]))
