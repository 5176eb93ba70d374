#!/usr/bin/env python
"""The project's benchmark page: for each seed net, torch eager, onnxruntime fp32, the textbook
``quantize_dynamic``, edgecnn ``dynamic``, ``static`` and ``auto``'s choice, at batch 1 and 64, with
cold start and peak memory — all of a net's variants measured round-robin in one ``edgecnn bench`` run.
Writes the tables into BENCHMARKS.md between its ``benchmarks.py`` markers, with the command, the date and
the environment block.

    .venv/bin/python tools/benchmarks.py [--runs runs/bench] [--iters 200] [--cold-runs 3] [--archs a,b]
    .venv/bin/python tools/benchmarks.py --section backends [--archs a,b]   # tools/backend_table.py
    .venv/bin/python tools/benchmarks.py --section threads [--archs a,b]    # tools/bench_threads.py

The page's checkpoints come from ``--runs/ARCH`` and are trained there (one epoch, seed 0) when missing;
the backends and threads sections measure the zoo's trained files (``models/``).
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
import tempfile
from pathlib import Path

from seednets import SEED_NETS, checkpoint_for  # tools/seednets.py

from edgecnn.bench import BenchResult, run_bench
from edgecnn.config import BenchConfig, ExportConfig
from edgecnn.export.from_checkpoint import export_checkpoint
from edgecnn.export.graphs import strip_value_info
from edgecnn.export.quantize import quiet_quantizer_logs
from edgecnn.files import atomic_path

PAGE = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
START, END = "<!-- benchmarks.py:start -->", "<!-- benchmarks.py:end -->"
NOISE_NOTE = (
    'Rows holding the same graph as "ORT fp32" ("auto → none", and "dynamic" where no weight qualified: '
    "fashion_bn, keras_valid) measure one graph twice: their spread from 1.00 is this machine's noise "
    "floor in that run. torch eager runs its own thread pool beside the non-spinning sessions."
)


def textbook(fp32: Path, dst: Path) -> None:
    """onnxruntime's quantize_dynamic with every default (after dropping value_info: onnxruntime#25890
    makes the call fail on torch's graphs otherwise). The edgecnn metadata survives, so the bench reads it."""
    from onnxruntime.quantization import quantize_dynamic

    stripped = dst.with_name("stripped.onnx")
    strip_value_info(fp32, stripped)
    quantize_dynamic(str(stripped), str(dst))


def bench_net(arch: str, runs: Path, config: BenchConfig, work: Path) -> tuple[str, BenchResult]:
    ckpt = checkpoint_for(arch, runs)
    files, labels = {}, {}
    for mode in ("none", "dynamic", "static", "auto"):
        files[mode] = work / f"{arch}-{mode}.onnx"
        report = export_checkpoint(ckpt, files[mode], ExportConfig(quantize=mode, latency_iters=100))
        labels[mode] = f"auto → {report.mode}" if mode == "auto" else {"none": "ORT fp32"}.get(mode, mode)
    files["textbook"] = work / f"{arch}-textbook.onnx"
    with quiet_quantizer_logs():  # onnxruntime's root-logger advice, kept off the terminal as edgecnn does
        textbook(files["none"], files["textbook"])
    labels["textbook"] = "textbook dynamic"
    order = ["none", "textbook", "dynamic", "static", "auto"]
    result = run_bench([files[m] for m in order], config, torch_checkpoint=str(ckpt))
    names = [str(files[m]) for m in order] + [result.models[-1].name]
    shown = [labels[m] for m in order] + ["torch eager"]
    lines = [
        f"**{arch}** ({SEED_NETS[arch]}, one epoch)",
        "",
        "| variant | file kB | b1 p50 ms | b1 p99 ms | × fp32 | b64 p50 ms | × fp32 | b64 samples/s "
        "| cold start ms | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, label, model in zip(names, shown, result.models, strict=True):
        b1, b64 = result.batches["1"][name], result.batches["64"][name]
        size = f"{model.file_bytes / 1e3:,.0f}" if model.file_bytes else "-"
        cold = model.cold_start_ms if model.cold_start_ms is not None else float("nan")
        rss = model.peak_rss_mib if model.peak_rss_mib is not None else float("nan")
        lines.append(
            f"| {label} | {size} | {b1.p50:.4f} | {b1.p99:.4f} | {b1.ratio_p50:.2f} | "
            f"{b64.p50:.3f} | {b64.ratio_p50:.2f} | {b64.throughput:,.0f} | {cold:,.0f} | {rss:.1f} |"
        )
    return "\n".join(lines), result


def page_section(args: argparse.Namespace) -> tuple[str, str]:
    config = BenchConfig(batch_sizes=(1, 64), iters=args.iters, cold_runs=args.cold_runs)
    tables, env = [], None
    with tempfile.TemporaryDirectory(prefix="edgecnn-page-") as tmp:
        for arch in args.archs.split(","):
            table, result = bench_net(arch, args.runs, config, Path(tmp))
            env = result.environment
            print(table + "\n", flush=True)
            tables.append(table)
    settings = (
        f"Settings: batch 1 and 64, {args.iters} timed runs each after 20 warm-up runs, all variants of a net "
        "(and torch eager) round-robin in blocks of 10, onnxruntime sessions not spinning; × fp32 = p50 / p50 "
        f"of ORT fp32 in the same run; cold start and peak RSS: median of {args.cold_runs} fresh processes "
        "(import + load + one batch-1 inference)."
    )
    return "## The benchmark page: every variant, torch eager included", "\n".join(
        [_provenance(env), settings, NOISE_NOTE, "", *[t + "\n" for t in tables]]
    )


def backends_section(args: argparse.Namespace) -> tuple[str, str]:
    """Backend × precision × threads per zoo net, auto's choice (hint 64) and the goals (backend_table.py)."""
    import backend_table

    from edgecnn.bench.environment import environment
    from edgecnn.config import QuantizeConfig
    from edgecnn.data.builtin import read_builtin
    from edgecnn.export.from_onnx import quantize_onnx
    from edgecnn.runtime.zoo import list_zoo, resolve_zoo

    datasets = {row.name: row.dataset for row in list_zoo()}  # the zoo's own (keras_valid: mnist there)
    tables = []
    with tempfile.TemporaryDirectory(prefix="edgecnn-backends-") as tmp:
        for arch in args.archs.split(","):
            auto_file = Path(tmp) / f"{arch}.auto.onnx"
            report = quantize_onnx(resolve_zoo(f"zoo:{arch}:fp32"), auto_file, QuantizeConfig(batch_size_hint=64))
            data = read_builtin(datasets[arch], "test")
            rows = backend_table.measure_net(arch, auto_file, data.images[:2000], data.labels[:2000])
            table = backend_table.markdown(arch, datasets[arch], rows) + _auto_line(report)
            print(table, flush=True)
            tables.append(table)
    return "## Backends: onnxruntime and OpenVINO on the same files, by precision and threads", "\n".join(
        [_provenance(environment()), backend_table.__doc__.split("\n\n", 1)[1].strip(), "", *tables]
    )


def _auto_line(report) -> str:
    decision = report.auto
    why = "; ".join(f"{r.candidate}: {r.why_not}" for r in decision.table if r.why_not)
    return f"\n`quantize --batch-size-hint 64` chose **{decision.chosen}** (not chosen — {why}).\n"


def threads_section(args: argparse.Namespace) -> tuple[str, str]:
    import bench_threads

    from edgecnn.bench.environment import environment

    tables = []
    for arch in args.archs.split(","):
        for variant in ("fp32", "int8"):
            table = bench_threads.markdown(arch, variant, bench_threads.sweep(arch, variant, 1.0, 3))
            print(table, flush=True)
            tables.append(table)
    return "## Threads: the default thread policy's evidence", "\n".join(
        [_provenance(environment()), bench_threads.__doc__.split("\n\n", 2)[2].strip(), "", *tables]
    )


def _provenance(env: dict) -> str:
    return (
        f"Command: `.venv/bin/python tools/benchmarks.py {' '.join(sys.argv[1:])}`\n"
        f"Date: {datetime.date.today()}. Environment: {env['cpu']} ({env['machine']}), {env['cores']} cores, "
        f"flags {' '.join(env['cpu_flags'])}; {env['system']}; Python {env['python']}, numpy {env['numpy']}, "
        f"onnxruntime {env['onnxruntime']}, {_openvino()}edgecnn {env['edgecnn']}; providers "
        f"{', '.join(env['providers'])}."
    )


def _openvino() -> str:
    try:
        import openvino
    except ImportError:
        return ""
    return f"openvino {openvino.__version__.split('-')[0]}, "


SECTIONS = {"page": page_section, "backends": backends_section, "threads": threads_section}


def write_section(section: str, heading: str, body: str) -> None:
    """Replace the section's block in BENCHMARKS.md (between its markers), or append it under ``heading``."""
    start, end = (
        (START, END)
        if section == "page"
        else (f"<!-- benchmarks.py:{section}:start -->", f"<!-- benchmarks.py:{section}:end -->")
    )
    block = "\n".join([start, "", body, end])
    page = PAGE.read_text()
    if start in page:
        page = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, page, flags=re.S)
    else:
        page = page.rstrip() + f"\n\n{heading}\n\n" + block + "\n"
    with atomic_path(PAGE) as tmp_page:
        tmp_page.write_text(page)
    print(f"# wrote {PAGE}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--section", choices=list(SECTIONS), default="page")
    parser.add_argument("--runs", type=Path, default=Path("runs/bench"))
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--archs", default=",".join(SEED_NETS))
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    heading, body = SECTIONS[args.section](args)
    if not args.no_write:
        write_section(args.section, heading, body)


if __name__ == "__main__":
    main()
