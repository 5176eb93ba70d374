"""``edgecnn bundle``: a model packaged for where it runs, checked there (``--target web``: a static page on
onnxruntime-web; ``--target mobile``: the ORT format for onnxruntime-mobile; docs/bundle.md)."""

from __future__ import annotations

import click

from edgecnn.cli.output import print_json
from edgecnn.cli.requires import require
from edgecnn.cli.zoo import resolve_model, zoo_dir_option

__all__ = ["bundle", "BUNDLE_TARGETS"]

BUNDLE_TARGETS = ("web", "mobile")  # a static page on onnxruntime-web (export/web.py); the ORT format (mobile.py)


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--target", type=click.Choice(BUNDLE_TARGETS), required=True)
@click.option("--out", type=click.Path(file_okay=False), required=True, help="The folder to write the bundle into.")
@click.option("--json", "as_json", is_flag=True, help="The bundle's report (bundle.json) on stdout.")
@click.option(
    "--samples",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="web: a folder of images to bundle as the self-test's samples (default: the model's dataset's test images).",
)
@zoo_dir_option
def bundle(model: str, target: str, out: str, as_json: bool, samples: str | None, zoo_dir: str | None) -> None:
    """Package MODEL.onnx for TARGET into the folder OUT, and check it. For web, a static page that classifies
    photos, camera frames and drawings with onnxruntime-web, framed as the Predictor frames them
    (index.html?selftest=1 answers the bundled samples as JSON). For mobile, the ORT-format file
    onnxruntime-mobile loads, the operators a reduced onnxruntime build needs, the preprocessing contract
    as JSON, and the .ort file's parity with the .onnx on real test images (bundle.json: sizes, operators,
    parameters, MACs, peak activation memory, latency here). MODEL may be zoo:NAME[:fp32|int8]."""
    require("quantize", "edgecnn bundle")  # onnxruntime's converter and the graph's costs read it with onnx
    from edgecnn.export.mobile import bundle_mobile
    from edgecnn.export.web import bundle_web

    say = lambda line: click.echo(f"edgecnn: {line}", err=True)  # noqa: E731
    path = resolve_model(model, zoo_dir)
    if target == "web":
        report = bundle_web(path, out, samples=samples, say=say)
    elif samples:
        raise click.UsageError("--samples is for --target web")
    else:
        report = bundle_mobile(path, out, say=say)
    if as_json:
        print_json(report)
