"""``edgecnn predict`` and ``edgecnn info``: the device side, torch-free."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from edgecnn.cli.output import print_json
from edgecnn.config import PROVIDERS

__all__ = ["predict", "info"]


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--top-k", type=int, default=1, show_default=True)
@click.option("--provider", type=click.Choice(PROVIDERS), default="auto", show_default=True)
@click.option("--no-invert", is_flag=True, help="Never invert light-background images for MNIST-style models.")
@click.option("--json", "as_json", is_flag=True, help="One JSON list on stdout: a result or an error per file.")
def predict(model: str, images: tuple[str, ...], top_k: int, provider: str, no_invert: bool, as_json: bool) -> None:
    """Classify IMAGE files (PNG, JPEG, BMP) with MODEL.onnx. A bad file gets its own error line; the
    rest still run; the exit status is 1 if any failed."""
    from edgecnn.errors import ImageError
    from edgecnn.runtime import Predictor
    from edgecnn.runtime.preprocess import load_image

    predictor = Predictor(model, provider=provider)
    results: dict[str, Any] = {}
    loaded = {}
    for path in images:
        try:
            loaded[path] = load_image(path)
        except ImageError as exc:
            results[path] = {"file": path, "error": str(exc)}
    if loaded:
        for path, result in zip(
            loaded, predictor.predict(list(loaded.values()), top_k, invert=not no_invert), strict=True
        ):
            results[path] = {"file": path, **result.to_dict()}
    ordered = [results[path] for path in images]
    for result in ordered:
        if "error" in result:
            click.echo(f"edgecnn: error: {result['error']}", err=True)
        elif not as_json:
            others = ", ".join(f"{t['label']} {t['probability']:.1%}" for t in result["top_k"][1:])
            click.echo(
                f"{result['file']}: {result['label']} ({result['probability']:.1%})"
                + (f"; then {others}" if others else "")
            )
    if as_json:
        print_json(ordered)
    if any("error" in r for r in ordered):
        sys.exit(1)


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def info(model: str, as_json: bool) -> None:
    """Show what MODEL.onnx carries: its card (arch, classes, input, normalization, data, metrics,
    lineage), quantization and parity."""
    from edgecnn.runtime.metadata import read_metadata
    from edgecnn.runtime.session import open_session

    session = open_session(model)
    meta = read_metadata(session, source=model)
    graph_input = session.get_inputs()[0]
    data = {
        "file": model,
        "size_bytes": os.path.getsize(model),
        "version": meta.version,
        "card": meta.card.to_dict(),
        "input": meta.input.to_dict(),
        "quantization": dict(meta.quantization),
        "parity": dict(meta.parity),
        "graph_input": graph_input.shape,
        "graph_input_type": graph_input.type,
        "session_providers": session.get_providers(),
    }
    if as_json:
        print_json(data)
        return
    click.echo("\n".join(_info_lines(model, data["size_bytes"], meta)))


def _info_lines(model: str, size: int, meta: Any) -> list[str]:
    card, spec, quant, parity = meta.card, meta.input, meta.quantization, meta.parity
    auto = (
        f" (auto's choice among {', '.join(r['candidate'] for r in quant['auto']['table'])})" if "auto" in quant else ""
    )
    lines = [
        f"file            {model} ({size:,} bytes), edgecnn {meta.version}",
        f"arch            {card.arch}, trained on {card.dataset}"
        + (f", fp32 test accuracy {card.test_accuracy:.2%}" if card.test_accuracy is not None else ""),
        f"classes         {len(card.class_names)}: {', '.join(card.class_names)}",
        f"input           {spec.name}: {spec.dtype} {spec.layout} {'×'.join(map(str, spec.graph_shape))} per image"
        + (" (raw pixels; the graph normalises)" if spec.baked else " (normalised)"),
        f"normalization   mean {list(card.normalization.mean)}, std {list(card.normalization.std)}",
        f"lineage         {card.lineage.summary()}",
        f"quantization    {quant.get('mode')}{auto}",
    ]
    if parity:
        lines.append(
            f"parity          {'passed' if parity.get('passed') else 'FAILED'} on {parity['samples']:,} test "
            f"images: top-1 agreement {parity['top1_agreement']:.2%}, max |Δlogit| {parity['max_abs']:.3g}, "
            f"Δaccuracy {parity['delta_accuracy_pp']:+.2f} pp"
        )
    return lines
