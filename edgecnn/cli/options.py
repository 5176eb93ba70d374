"""CLI options generated from the config dataclasses, so each field is one option with its default.

``--field-name`` for ``field_name``; bool fields are flags; tuple fields take comma-separated values
(converted here, so a bad value is a ConfigError: exit 1 with one line, like any invalid setting).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import click

from edgecnn.errors import ConfigError

__all__ = ["config_options", "config_from_options", "convert_option"]

C = TypeVar("C")
F = TypeVar("F", bound=Callable[..., Any])
_TYPES = {"int": int, "float": float, "str": str}


def config_options(
    cls: type, *, help: Mapping[str, str], choices: Mapping[str, Sequence[str]] | None = None, skip: Sequence[str] = ()
) -> Callable[[F], F]:
    """Decorate a click command with one option per field of ``cls`` (except ``skip``): its own fields first, then
    those it inherits (the settings export and quantize share), each group in field order."""
    choices = choices or {}
    own = set(vars(cls).get("__annotations__", {}))
    fields = sorted(dataclasses.fields(cls), key=lambda f: f.name not in own)  # stable: field order within

    def decorate(command: F) -> F:
        for field in reversed(fields):
            if field.name not in skip:
                command = _option(field, help.get(field.name), choices.get(field.name))(command)
        return command

    return decorate


def _option(field: dataclasses.Field, help_text: str | None, choice: Sequence[str] | None) -> Callable[[F], F]:
    flag, kind, default = "--" + field.name.replace("_", "-"), str(field.type), field.default
    if kind == "bool":
        return click.option(flag, field.name, is_flag=True, default=default, help=help_text)
    if kind.startswith("tuple["):  # comma-separated; converted (and refused) in config_from_options
        shown = ",".join(map(str, default)) if default else None
        return click.option(flag, field.name, default=shown, show_default=shown is not None, help=help_text)
    base = _TYPES[kind.split(" | ")[0]]
    param_type = click.Choice(list(choice)) if choice else base
    return click.option(
        flag, field.name, type=param_type, default=default, show_default=default is not None, help=help_text
    )


def convert_option(cls: type, name: str, value: Any) -> Any:
    """A parsed option's value as the field's type (comma lists → tuples)."""
    kind = str({f.name: f.type for f in dataclasses.fields(cls)}[name])
    if value is None or not kind.startswith("tuple[") or isinstance(value, tuple):
        return value
    parts = [part.strip() for part in str(value).split(",") if part.strip()]
    number = {"tuple[int": (int, "whole numbers", "1,8,64"), "tuple[float": (float, "numbers", "0.5,0.5,0.5")}
    for prefix, (cast, what, example) in number.items():
        if kind.startswith(prefix):
            try:
                return tuple(cast(part) for part in parts)
            except ValueError as exc:
                raise ConfigError(
                    f"--{name.replace('_', '-')} takes {what} separated by commas, e.g. {example} (got {value!r})"
                ) from exc
    return tuple(parts) or None


def config_from_options(cls: type[C], options: Mapping[str, Any]) -> C:
    """Build ``cls`` from a command's parsed options (those that are its fields)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: convert_option(cls, k, v) for k, v in options.items() if k in names})
