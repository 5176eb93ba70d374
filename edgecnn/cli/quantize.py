"""``edgecnn quantize``: an existing fp32 ONNX file → quantized, gated against it on real labelled data."""

from __future__ import annotations

from typing import Any

import click

from edgecnn.cli.options import config_from_options, config_options
from edgecnn.cli.output import show_export_report
from edgecnn.cli.quantization import SETTINGS_CHOICES, SETTINGS_HELP
from edgecnn.cli.requires import require
from edgecnn.cli.zoo import refuse_zoo_output, resolve_model, zoo_dir_option
from edgecnn.config import INPUT_LAYOUTS, QuantizeConfig
from edgecnn.export.modes import quantize_choices
from edgecnn.files import check_writable, report_path
from edgecnn.runtime.zoo import is_zoo_spec

__all__ = ["quantize"]

QUANTIZE_HELP = {
    "mode": "A quantization mode, or auto (measure the candidates, keep the fastest that passes).",
    "calibration": "Labelled images: mnist, fashion-mnist or a folder of class folders (train/ + test/ or val/, "
    "or split as training splits it), whose classes must be the model's (default: the card's dataset).",
    **SETTINGS_HELP,
    "classes": "A file without edgecnn metadata: comma-separated class names (default: the dataset's).",
    "mean": "A file without edgecnn metadata: comma-separated per-channel mean (pixels scaled to 0–1).",
    "std": "A file without edgecnn metadata: comma-separated per-channel std.",
    "layout": "A file without edgecnn metadata: its input layout.",
}


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Where to write the quantized model.")
@config_options(
    QuantizeConfig,
    help=QUANTIZE_HELP,
    choices={"mode": quantize_choices(), "layout": INPUT_LAYOUTS, **SETTINGS_CHOICES},
)
@click.option("--json", "as_json", is_flag=True, help="Print the report card as JSON on stdout.")
@zoo_dir_option
def quantize(model: str, out: str, as_json: bool, zoo_dir: str | None, **options: Any) -> None:
    """Quantize an fp32 MODEL.onnx (any exporter's) and prove parity with it on real labelled images.
    MODEL may be a zoo model, zoo:NAME (its fp32 file unless :int8 is named); --out is never in the zoo."""
    if is_zoo_spec(model):
        refuse_zoo_output(out, zoo_dir)
        model = resolve_model(model, zoo_dir, default_variant="fp32")
    check_writable(out, what="--out")  # before the candidates are built and measured, as is the report card
    check_writable(report_path(out), what="--out's report card")
    require("quantize", "edgecnn quantize")
    from edgecnn.export.from_onnx import quantize_onnx

    report = quantize_onnx(model, out, config_from_options(QuantizeConfig, options))
    show_export_report(report, as_json=as_json)
