"""The readable table of a :class:`~edgecnn.bench.run.BenchResult`."""

from __future__ import annotations

from edgecnn.bench.run import BenchResult
from edgecnn.bench.subjects import ModelInfo

__all__ = ["format_report"]


def format_report(result: BenchResult) -> str:
    """Environment, one line per model, one block per batch size (ratios to the first model)."""
    env = result.environment
    short = {m.name: f"m{i + 1}" for i, m in enumerate(result.models)}
    lines = [
        f"environment: {env['cpu']} ({env['machine']}), {env['cores']} logical / {env['physical_cores']} "
        f"physical cores, flags: {' '.join(env['cpu_flags']) or 'none detected'}; onnxruntime "
        f"{env['onnxruntime']}, edgecnn {env['edgecnn']}, numpy {env['numpy']}, python {env['python']}; "
        f"providers: {', '.join(env['providers'])}",
        "",
        f"{'':4}{'model':<44} {'kind':<12} {'size kB':>9} {'provider':>8} {'thr':>3} {'create ms':>9} "
        f"{'first ms':>8} {'cold ms':>8} {'RSS MiB':>8}",
    ]
    lines += [_model_line(short[m.name], m) for m in result.models]
    for batch, rows in result.batches.items():
        lines += [
            "",
            f"batch {batch} (ms; ratio = p50 / p50 of m1)",
            f"{'':4}{'p50':>9} {'p90':>9} {'p99':>9} {'mean':>9} {'std':>8} {'min':>9} {'max':>9} "
            f"{'samples/s':>10} {'ratio':>6} {'n':>5}",
        ]
        for name, r in rows.items():
            lines.append(
                f"{short[name]:<4}{r.p50:>9.4f} {r.p90:>9.4f} {r.p99:>9.4f} {r.mean:>9.4f} "
                f"{r.std:>8.4f} {r.min:>9.4f} {r.max:>9.4f} {r.throughput:>10,.0f} "
                f"{r.ratio_p50:>6.2f} {r.samples:>5}"
            )
    if len(result.models) > 1:
        lines += ["", "(several models side by side: onnxruntime sessions run without spinning threads)"]
    elif not result.spinning:
        lines += ["", "(onnxruntime's idle threads do not spin: the default thread policy)"]
    return "\n".join(lines)


def _model_line(key: str, m: ModelInfo) -> str:
    size = f"{m.file_bytes / 1e3:,.0f}" if m.file_bytes else "-"
    kind = m.kind if m.kind == "torch" else f"{'ov' if m.kind == 'openvino' else 'ort'} {m.quantization} {m.precision}"
    cold = f"{m.cold_start_ms:.0f}" if m.cold_start_ms is not None else "-"
    rss = f"{m.peak_rss_mib:.1f}" if m.peak_rss_mib is not None else "-"
    label = "torch eager" if m.kind == "torch" else m.name
    label = label if len(label) <= 44 else "…" + label[-43:]
    return (
        f"{key:<4}{label:<44} {kind:<12} {size:>9} {m.provider:>8} {m.threads:>3} {m.session_create_ms:>9.1f} "
        f"{m.first_inference_ms:>8.2f} {cold:>8} {rss:>8}"
    )
