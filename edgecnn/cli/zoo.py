"""``edgecnn zoo``: the trained models this install can run by name; and the ``zoo:NAME`` argument that
``predict``, ``info``, ``bench`` and ``quantize`` take in place of a file (with their ``--zoo-dir``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from edgecnn.cli.output import print_json
from edgecnn.errors import ConfigError
from edgecnn.runtime.zoo import ZooRow, is_zoo_spec, list_zoo, parse_zoo_spec, resolve_zoo, zoo_dirs

__all__ = ["zoo_command", "zoo_dir_option", "resolve_model", "refuse_zoo_output"]

F = TypeVar("F", bound=Callable[..., Any])


def zoo_dir_option(command: F) -> F:
    """The ``--zoo-dir`` option every command that takes a MODEL has."""
    return click.option(
        "--zoo-dir",
        type=click.Path(file_okay=False),
        default=None,
        help="The model zoo folder for zoo:NAME (default: $EDGECNN_ZOO, the checkout's models/, the wheel's copy).",
    )(command)


def resolve_model(model: str, zoo_dir: str | None, *, default_variant: str | None = None) -> str:
    """A file path as given; ``zoo:NAME[:VARIANT]`` → its checked file in the zoo (``default_variant`` in place
    of the net's default when the spec names none: quantize starts from fp32)."""
    if not is_zoo_spec(model):
        return model
    if default_variant and parse_zoo_spec(model)[1] is None:
        model = f"{model}:{default_variant}"
    return str(resolve_zoo(model, zoo_dir))


def refuse_zoo_output(out: str, zoo_dir: str | None, *, what: str = "--out") -> None:
    """A command reading from the zoo never writes into it: its files are checked against the index."""
    target = Path(out).resolve()
    for folder in zoo_dirs(zoo_dir):
        if target.is_relative_to(folder.resolve()):
            raise ConfigError(f"{what} {out} is inside the model zoo {folder}: write the result somewhere else")


@click.command("zoo")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@zoo_dir_option
def zoo_command(as_json: bool, zoo_dir: str | None) -> None:
    """List the zoo's trained models: run one with `edgecnn predict zoo:NAME IMAGE` or
    `Predictor.from_zoo(NAME)`. Each file's SHA-256 is checked against the zoo's index when it is used."""
    rows = list_zoo(zoo_dir)
    if as_json:
        print_json({"searched": [str(folder) for folder in zoo_dirs(zoo_dir)], "nets": [r.to_dict() for r in rows]})
        return
    click.echo(f"{'name':<16} {'dataset':<14} {'variants (* default)':<36} {'test acc':>8}  summary")
    for row in rows:
        click.echo(_row_line(row))
    for folder in dict.fromkeys(row.index for row in rows):
        click.echo(f"zoo: {folder}")
    if any(len(row.available) < len(row.files) for row in rows):
        click.echo(
            "(not here: a variant this install lacks; pass --zoo-dir or set EDGECNN_ZOO to a checkout's models/)"
        )


def _row_line(row: ZooRow) -> str:
    variants = ", ".join(
        f"{variant}{'*' if variant == row.default else ''} "
        + (_size(row.sizes[variant]) if row.files[variant] else "(not here)")
        for variant in row.files
    )
    accuracy = row.test_accuracy.get(row.default)
    shown = f"{accuracy:.2%}" if accuracy is not None else "-"
    return f"{row.name:<16} {row.dataset:<14} {variants:<36} {shown:>8}  {row.summary}"


def _size(size: int) -> str:
    return f"{size / 1e6:.2f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"
