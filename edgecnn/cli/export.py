"""``edgecnn export`` and ``edgecnn verify``."""

from __future__ import annotations

from typing import Any

import click

from edgecnn.cli.options import config_from_options, config_options
from edgecnn.cli.output import print_json, warn
from edgecnn.config import CALIBRATION_METHODS, PARITY_BATCH_SIZES, REPORT_BATCH_SIZES, ExportConfig
from edgecnn.export.modes import quantize_choices

__all__ = ["export_command", "verify"]

EXPORT_HELP = {
    "opset": "ONNX opset.",
    "quantize": "none, a quantization mode, or auto (measure the candidates, keep the fastest that passes).",
    "quantize_ops": "Comma-separated op types to quantize (dynamic default: MatMul,Gemm).",
    "min_weight_elements": "dynamic: leave MatMul/Gemm with fewer weights in float.",
    "calibration_samples": "static: training images to calibrate on.",
    "calibration_method": "static: how activation ranges are found.",
    "max_accuracy_drop": "Percentage points a quantized model may lose vs torch.",
    "parity_samples": "Test images for the parity gate.",
    "bake_preprocessing": "The graph takes raw uint8 pixels (N×H×W or N×H×W×C).",
    "latency_iters": "Timed runs per variant and batch size.",
    "seed": "Picks the calibration sample.",
    "data_root": "Dataset root (default: the checkpoint's, else $EDGECNN_DATA / the cache dir).",
}


@click.command("export")
@click.argument("checkpoint", type=click.Path(dir_okay=True))
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False), help="Where to write MODEL.onnx (and MODEL.report.json)."
)
@config_options(
    ExportConfig, help=EXPORT_HELP, choices={"quantize": quantize_choices(), "calibration_method": CALIBRATION_METHODS}
)
@click.option("--json", "as_json", is_flag=True, help="Print the report card as JSON on stdout.")
def export_command(checkpoint: str, out: str, as_json: bool, **options: Any) -> None:
    """Export CHECKPOINT to ONNX, quantize it, and prove parity with torch on the test set."""
    from edgecnn.export.job import export_checkpoint

    report = export_checkpoint(checkpoint, out, config_from_options(ExportConfig, options))
    for message in report.warnings:
        warn(message)
    if as_json:
        print_json(report.to_dict())
        return
    _print_export(report)


def _print_export(report: Any) -> None:
    if report.auto:
        click.echo("auto: candidates measured on this machine (p50 ms)")
        small, large = (str(b) for b in REPORT_BATCH_SIZES)
        click.echo(
            f"  {'candidate':<9} {'accuracy':>9} {'drop pp':>8} {'batch ' + small:>9} {'batch ' + large:>9} "
            f"{'rel.':>6} {'size':>10}"
        )
        for row in report.auto.table:
            mark = "*" if row.candidate == report.auto.chosen else (" " if row.eligible else "x")
            click.echo(
                f"{mark} {row.candidate:<9} {row.accuracy:>9.2%} {row.drop_pp:>8.2f} "
                f"{row.latency_ms[small]:>9.4f} {row.latency_ms[large]:>9.4f} "
                f"{row.relative_time:>6.2f} {row.size_bytes:>10,}"
            )
    sizes, acc, parity = report.size_bytes, report.accuracy, report.parity
    quantized = ", ".join(f"{v['quantized']}/{v['of']} {op}" for op, v in report.quantized_ops.items())
    click.echo(
        f"exported {report.model}: {report.mode} ({quantized} quantized), "
        f"{sizes['exported']:,} bytes = {report.size_ratio:.2f}× fp32"
    )
    click.echo(
        f"parity on {parity.samples:,} test images, batches {'/'.join(map(str, PARITY_BATCH_SIZES))}: "
        f"top-1 agreement {parity.top1_agreement:.2%}, max |Δlogit| {parity.max_abs:.3g}; accuracy "
        f"{acc['exported']:.2%} vs torch {acc['fp32']:.2%} ({acc['delta_pp']:+.2f} pp)"
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


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=True))
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--parity-samples", type=int, default=ExportConfig.parity_samples, show_default=True)
@click.option("--max-accuracy-drop", type=float, default=None, help="Override the budget stored in the model.")
@click.option("--data-root", default=None, help="Dataset root (default: the checkpoint's).")
@click.option("--json", "as_json", is_flag=True)
def verify(
    checkpoint: str,
    model: str,
    parity_samples: int,
    max_accuracy_drop: float | None,
    data_root: str | None,
    as_json: bool,
) -> None:
    """Check MODEL.onnx against CHECKPOINT on the real test set; exit 1 if a parity gate fails."""
    from edgecnn.export.job import verify_export

    report = verify_export(
        checkpoint, model, parity_samples=parity_samples, max_accuracy_drop=max_accuracy_drop, data_root=data_root
    )
    if as_json:
        print_json(report.to_dict())
        return
    click.echo(
        f"parity passed on {report.samples:,} test images: top-1 agreement {report.top1_agreement:.2%}, "
        f"max |Δlogit| {report.max_abs:.3g}, accuracy {report.onnx_accuracy:.2%} vs torch "
        f"{report.torch_accuracy:.2%} ({report.delta_accuracy_pp:+.2f} pp)"
    )
