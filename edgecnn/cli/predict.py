"""``edgecnn predict``: image files, folders or a list on stdin → one line (or JSON entry) per image."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from edgecnn.cli.output import print_json
from edgecnn.cli.stop import stoppable
from edgecnn.cli.zoo import resolve_model, zoo_dir_option
from edgecnn.config import FIT_MODES, INPUT_LAYOUTS, PROVIDERS
from edgecnn.runtime.backends import BACKENDS, OPENVINO_PRECISIONS

__all__ = ["predict"]

CHUNK = 256  # images decoded and classified together: bounded memory for folders of any size
PROGRESS_FROM = 300  # more files than this get a progress bar (on a terminal)


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
    zoo_dir: str | None,
    **foreign: str | None,
) -> None:
    """Classify IMAGES with MODEL.onnx: files, folders (searched recursively, sorted) or `-` for paths on
    stdin. A bad file gets its own error line; the rest still run; the exit status is 1 if any failed.
    MODEL may be a zoo model, zoo:NAME[:fp32|int8] (`edgecnn zoo` lists them)."""
    from edgecnn.runtime import Predictor

    predictor = Predictor(
        resolve_model(model, zoo_dir), provider=provider, allow_fallback=allow_fallback, fit=fit, **_foreign(foreign)
    )
    files, problems = _expand(images)
    results = [{"file": path, "error": f"{path}: {why}"} for path, why in problems]  # a path not read is said
    for result in results:
        _show(result, as_json)
    with stoppable() as on_ctrl_c:  # a model that never finishes still stops on Ctrl-C
        on_ctrl_c(predictor.engine.stop)
        for chunk in _chunks(files):
            for result in _classify(predictor, chunk, top_k, invert=not no_invert):
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


def _expand(arguments: tuple[str, ...]) -> tuple[list[str], list[tuple[str, str]]]:
    """(files, problems): files as given; folders → their image files, recursively, sorted; ``-`` → paths read
    from stdin. A sub-folder that cannot be listed, or a link that loops, is a (path, why) problem: no image is
    lost without a word."""
    from edgecnn.data.folders import walk_image_files
    from edgecnn.runtime.images import IMAGE_SUFFIXES

    files: list[str] = []
    problems: list[tuple[str, str]] = []
    for argument in arguments:
        if argument == "-":
            files += [line.strip() for line in sys.stdin if line.strip()]
        elif Path(argument).is_dir():
            found, trouble = walk_image_files(argument, IMAGE_SUFFIXES)  # the files predict takes, the data tier's walk
            files += sorted(found)
            problems += trouble
        else:
            files.append(argument)
    return files, problems


def _chunks(files: list[str]) -> Iterator[list[str]]:
    from tqdm import tqdm

    show = sys.stderr.isatty() and len(files) > PROGRESS_FROM
    with tqdm(total=len(files), unit="image", disable=not show, file=sys.stderr, leave=False) as bar:
        for start in range(0, len(files), CHUNK):
            yield files[start : start + CHUNK]
            bar.update(min(CHUNK, len(files) - start))


def _classify(predictor: Any, paths: list[str], top_k: int, *, invert: bool) -> list[dict[str, Any]]:
    from edgecnn.errors import ImageError
    from edgecnn.runtime.images import load_image

    results: dict[str, Any] = {}
    loaded = {}
    for path in paths:
        try:
            loaded[path] = load_image(path)
        except ImageError as exc:
            results[path] = {"file": path, "error": str(exc)}
    if loaded:
        predictions = predictor.predict(list(loaded.values()), top_k, invert=invert)
        for path, result in zip(loaded, predictions, strict=True):
            results[path] = {"file": path, **result.to_dict()}
    return [results[path] for path in paths]


def _show(result: dict[str, Any], as_json: bool) -> None:
    if "error" in result:
        click.echo(f"edgecnn: error: {result['error']}", err=True)
    elif not as_json:
        others = ", ".join(f"{t['label']} {t['probability']:.1%}" for t in result["top_k"][1:])
        click.echo(
            f"{result['file']}: {result['label']} ({result['probability']:.1%})"
            + (f"; then {others}" if others else "")
        )
