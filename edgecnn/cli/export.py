"""``edgecnn export`` and ``edgecnn verify``."""

from __future__ import annotations

from typing import Any

import click

from edgecnn.cli.info import report_line
from edgecnn.cli.options import config_from_options, config_options
from edgecnn.cli.output import print_json, show_export_report, warn
from edgecnn.cli.quantization import SETTINGS_CHOICES, SETTINGS_HELP
from edgecnn.cli.requires import require
from edgecnn.config import ExportConfig
from edgecnn.errors import ConfigError
from edgecnn.export.modes import quantize_choices
from edgecnn.files import check_writable, report_path, report_status

__all__ = ["export_command", "verify"]

EXPORT_HELP = {
    "opset": "ONNX opset.",
    "quantize": "none, a quantization mode, or auto (measure the candidates, keep the fastest that passes).",
    "bake_preprocessing": "The graph takes raw uint8 pixels (N×H×W or N×H×W×C).",
    **SETTINGS_HELP,
}


@click.command("export")
@click.argument("checkpoint", type=click.Path(dir_okay=True))
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False), help="Where to write MODEL.onnx (and MODEL.report.json)."
)
@config_options(ExportConfig, help=EXPORT_HELP, choices={"quantize": quantize_choices(), **SETTINGS_CHOICES})
@click.option("--json", "as_json", is_flag=True, help="Print the report card as JSON on stdout.")
def export_command(checkpoint: str, out: str, as_json: bool, **options: Any) -> None:
    """Export CHECKPOINT to ONNX, quantize it, and prove parity with torch on the test set."""
    if checkpoint.lower().endswith(".onnx"):
        raise ConfigError(
            f"{checkpoint} is already ONNX: `edgecnn export` takes a training checkpoint; to "
            f"quantize an fp32 .onnx use `edgecnn quantize {checkpoint} --out OUT.onnx --mode MODE`"
        )
    check_writable(out, what="--out")  # before the export's minutes, as is the report card beside it
    check_writable(report_path(out), what="--out's report card")
    require("train", "edgecnn export")
    from edgecnn.export.from_checkpoint import export_checkpoint

    report = export_checkpoint(checkpoint, out, config_from_options(ExportConfig, options))
    show_export_report(report, as_json=as_json)


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
    require("train", "edgecnn verify")
    from edgecnn.export.from_checkpoint import verify_export

    report = verify_export(
        checkpoint, model, parity_samples=parity_samples, max_accuracy_drop=max_accuracy_drop, data_root=data_root
    )
    card = report_status(model)
    if card is not None and card["matches"] is False:  # the gate passed; the card beside it is stale
        warn(f"{report_line(card).split(maxsplit=1)[1]}")
    if as_json:
        print_json(report.to_dict())
        return
    click.echo(
        f"parity passed on {report.samples:,} test images: top-1 agreement {report.top1_agreement:.2%}, "
        f"max |Δlogit| {report.max_abs:.3g}, accuracy {report.onnx_accuracy:.2%} vs torch "
        f"{report.reference_accuracy:.2%} ({report.delta_accuracy_pp:+.2f} pp)"
    )
