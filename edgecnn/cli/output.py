"""What every command prints the same way."""

from __future__ import annotations

import json
from typing import Any

import click

__all__ = ["print_json", "warn"]


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def warn(message: str) -> None:
    click.echo(f"edgecnn: warning: {message}", err=True)
