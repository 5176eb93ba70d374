"""``edgecnn predict``: image files, folders or a list on stdin → one line (or JSON entry) per image."""

from __future__ import annotations

import sys
from typing import Any

import click

from edgecnn.cli.classify_files import chunks, classify, expand, predict_to_file
from edgecnn.cli.options import config_from_options, config_options
from edgecnn.cli.output import print_json
from edgecnn.cli.stop import stoppable
from edgecnn.cli.zoo import resolve_model, zoo_dir_option
from edgecnn.config import ENGINES, FIT_MODES, INPUT_LAYOUTS, PROVIDERS, ClusterConfig
from edgecnn.runtime.backends import BACKENDS, OPENVINO_PRECISIONS

__all__ = ["predict"]

CLUSTER_HELP = {
    "engine": "process: classify here; ray: on Ray Data actors, one Predictor each (needs --output; 'edgecnn[ray]').",
    "address": "With --engine ray: the Ray cluster to join (auto, HOST:6379); default: start one on 127.0.0.1.",
    "replicas": "With --engine ray: actors, each holding the model.",
    "max_replicas": "With --engine ray: autoscale the actors from --replicas up to this many.",
}


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("images", nargs=-1, required=True)
@click.option("--top-k", type=int, default=1, show_default=True)
@click.option("--provider", type=click.Choice(PROVIDERS), default="auto", show_default=True)
@click.option("--allow-fallback", is_flag=True, help="With --provider cuda and no working CUDA: run on the CPU.")
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="auto",
    show_default=True,
    help="onnxruntime (what auto means today) or openvino (pip install edgecnn[openvino]).",
)
@click.option("--device", default=None, help="OpenVINO's device name (default CPU; GPU, NPU where present).")
@click.option(
    "--precision", type=click.Choice(OPENVINO_PRECISIONS), default=None, help="OpenVINO's precision (default f32)."
)
@click.option(
    "--fit",
    type=click.Choice(FIT_MODES),
    default=None,
    help="How a photo is framed to the model's size (default: the model's own; see `edgecnn info`).",
)
@click.option("--no-invert", is_flag=True, help="Never invert light-background images for MNIST-style models.")
@click.option("--classes", default=None, help="A model without edgecnn metadata: comma-separated class names.")
@click.option("--mean", default=None, help="A model without edgecnn metadata: comma-separated per-channel mean.")
@click.option("--std", default=None, help="A model without edgecnn metadata: comma-separated per-channel std.")
@click.option("--layout", type=click.Choice(INPUT_LAYOUTS), default=None, help="A model without edgecnn metadata.")
@click.option("--json", "as_json", is_flag=True, help="One JSON list on stdout: a result or an error per file.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write one row per file to this .csv, .jsonl or .parquet file (atomically; a killed run resumes).",
)
@config_options(ClusterConfig, help=CLUSTER_HELP, choices={"engine": ENGINES})
@zoo_dir_option
def predict(
    model: str,
    images: tuple[str, ...],
    top_k: int,
    provider: str,
    allow_fallback: bool,
    fit: str | None,
    no_invert: bool,
    as_json: bool,
    output: str | None,
    zoo_dir: str | None,
    **foreign: Any,
) -> None:
    """Classify IMAGES with MODEL.onnx: files, folders (searched recursively, sorted) or `-` for paths on
    stdin. A bad file gets its own error line; the rest still run; the exit status is 1 if any failed.
    MODEL may be a zoo model, zoo:NAME[:fp32|int8] (`edgecnn zoo` lists them). With --output the rows go to a
    file instead; with --engine ray they are made on a Ray cluster (docs/ray.md)."""
    from edgecnn.runtime import Predictor

    cluster = config_from_options(ClusterConfig, {k: foreign.pop(k) for k in CLUSTER_HELP})
    make = {"provider": provider, "allow_fallback": allow_fallback, "fit": fit, **_foreign(foreign)}
    path = resolve_model(model, zoo_dir)
    if cluster.engine == "ray" or output:
        predict_to_file(path, images, output, cluster, make=make, top_k=top_k, invert=not no_invert)
    else:
        _print_rows(Predictor(path, **make), images, top_k, invert=not no_invert, as_json=as_json)


def _print_rows(predictor: Any, images: tuple[str, ...], top_k: int, *, invert: bool, as_json: bool) -> None:
    """A line (or a JSON entry) per file; exit 1 if any failed or none was found."""
    files, problems = expand(images)
    results = [{"file": path, "error": f"{path}: {why}"} for path, why in problems]  # a path not read is said
    for result in results:
        _show(result, as_json)
    with stoppable() as on_ctrl_c:  # a model that never finishes still stops on Ctrl-C
        on_ctrl_c(predictor.engine.stop)
        for chunk in chunks(files):
            for result in classify(predictor, chunk, top_k, invert=invert):
                _show(result, as_json)
                results.append(result)
    if as_json:
        print_json(results)
    if not files and not problems:
        click.echo("edgecnn: error: no image files found in the given folders", err=True)
    if not files or any("error" in result for result in results):
        sys.exit(1)


def _foreign(options: dict[str, str | None]) -> dict[str, Any]:
    """The rest of the Predictor's options: the engine's (backend, device, precision) as given, and a foreign
    model's description (classes, mean, std, layout) converted as `edgecnn quantize` converts it."""
    from edgecnn.cli.options import convert_option
    from edgecnn.config import QuantizeConfig

    engine = ("backend", "device", "precision")
    return {k: v if k in engine else convert_option(QuantizeConfig, k, v) for k, v in options.items() if v is not None}


def _show(result: dict[str, Any], as_json: bool) -> None:
    if "error" in result:
        click.echo(f"edgecnn: error: {result['error']}", err=True)
    elif not as_json:
        others = ", ".join(f"{t['label']} {t['probability']:.1%}" for t in result["top_k"][1:])
        click.echo(
            f"{result['file']}: {result['label']} ({result['probability']:.1%})"
            + (f"; then {others}" if others else "")
        )
