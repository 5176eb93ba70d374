"""What every command prints the same way."""

from __future__ import annotations

import json
from typing import Any

import click

from edgecnn.config import PARITY_BATCH_SIZES

__all__ = ["print_json", "warn", "print_export_report", "show_export_report", "show_decision"]


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def warn(message: str) -> None:
    click.echo(f"edgecnn: warning: {message}", err=True)


def show_decision(decision: Any, *, title: str = "auto: candidates measured on this machine") -> None:
    """auto's (or tune's) table: every candidate configuration, * the chosen, x one that does not qualify (and
    why); the threads column when the candidates differ in it (tune)."""
    large = str(decision.batch_size_hint)
    threads = any(row.threads is not None for row in decision.table)
    click.echo(f"{title} (p50 ms; batch {large} is --batch-size-hint)")
    click.echo(
        f"  {'candidate':<22} {'runs in':<17}"
        + (f" {'threads':>7}" if threads else "")
        + f" {'accuracy':>9} {'drop pp':>8} {'batch 1':>9} {'batch ' + large:>10} {'size':>10}"
    )
    for row in decision.table:
        mark = "*" if row.candidate == decision.chosen else (" " if row.eligible else "x")
        spin = "" if row.threads is None else f"{row.threads}{'s' if row.spinning and row.threads > 1 else ''}"
        click.echo(
            f"{mark} {row.candidate:<22} {row.backend + ' ' + row.precision:<17}"
            + (f" {spin:>7}" if threads else "")
            + f" {row.accuracy:>9.2%} {row.drop_pp:>8.2f} {row.latency_ms['1']:>9.4f} {row.latency_ms[large]:>10.4f} "
            f"{row.size_bytes:>10,}" + (f"  ({row.why_not})" if row.why_not else "")
        )
    runtime = decision.runtime
    where = f" with {runtime['threads']} thread{'s' * (runtime['threads'] > 1)}" if "threads" in runtime else ""
    click.echo(
        f"{title.split(':')[0]} chose {decision.chosen}: Predictor(backend='auto') runs it on "
        f"{runtime['backend']} in {runtime['precision']}{where}"
    )


def print_export_report(report: Any) -> None:
    """The readable report card of `edgecnn export` / `edgecnn quantize`."""
    if report.auto:
        show_decision(report.auto)
    sizes, acc, parity = report.size_bytes, report.accuracy, report.parity
    quantized = ", ".join(f"{v['quantized']}/{v['of']} {op}" for op, v in report.quantized_ops.items())
    click.echo(
        f"exported {report.model}: {report.mode} ({quantized} quantized), "
        f"{sizes['exported']:,} bytes = {report.size_ratio:.2f}× fp32"
    )
    _show_calibration(report)
    _show_targets(report)
    click.echo(
        f"parity on {parity.samples:,} test images, batches {'/'.join(map(str, PARITY_BATCH_SIZES))}: "
        f"top-1 agreement {parity.top1_agreement:.2%}, max |Δlogit| {parity.max_abs:.3g}; accuracy "
        f"{acc['exported']:.2%} vs {'the fp32 file' if parity.reference == 'fp32 onnx' else 'torch'} "
        f"{acc['fp32']:.2%} ({acc['delta_pp']:+.2f} pp)"
    )
    lat = report.latency_ms_p50
    if report.mode == "none":
        click.echo("latency p50: " + ", ".join(f"batch {b} {ms:.4f} ms" for b, ms in lat["fp32"].items()))
        return
    click.echo(
        "latency p50: "
        + ", ".join(
            f"batch {b} {lat['exported'][b]:.4f} ms vs fp32 {lat['fp32'][b]:.4f} ms (speed-up {report.speedup[b]:.2f}×)"
            for b in lat["fp32"]
        )
    )


def _show_targets(report: Any) -> None:
    """--targets: each candidate's verdict, and the chosen file's rows per target."""
    for name, verdict in (report.targets or {}).items():
        remedy = f" with {verdict['remedy_why']}" if verdict["remedy"] else ""
        fate = (
            f"passed{remedy}" if verdict["passed"] else "refused: " + "; ".join(t["failing"] for t in verdict["tried"])
        )
        click.echo(f"targets: {name} {fate}")
    chosen = (report.targets or {}).get(report.mode)
    for row in chosen["targets"] if chosen else []:
        click.echo(
            f"  {row['target']:<12} agreement {row['agreement']:.2%}, Δacc {row['delta_accuracy_pp']:+.2f} pp, "
            f"max |Δlogit| {row['max_abs']:.3g} ({row['runtime']} {row['version']})"
        )


def _show_calibration(report: Any) -> None:
    """Static int8: the calibration method kept, and (calibration auto) each one tried with its accuracy."""
    calibration = report.settings.get("calibration") if report.mode == "static" else None
    if not isinstance(calibration, dict) or not calibration.get("method"):
        return
    tried = ", ".join(
        f"{row['method']} {row['accuracy']:.2%}{'' if row['passed'] else ' (failed the gates)'}"
        for row in calibration.get("tried") or []
    )
    click.echo(f"calibration: {calibration['method']}" + (f" (tried {tried})" if tried else " (as asked)"))


def show_export_report(report: Any, *, as_json: bool) -> None:
    """Warnings on stderr, then the report card as JSON or as text."""
    for message in report.warnings:
        warn(message)
    if as_json:
        print_json(report.to_dict())
        return
    print_export_report(report)
