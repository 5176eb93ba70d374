"""CLI options map 1:1 onto the config fields: a field without an option fails here."""

from __future__ import annotations

import dataclasses

import pytest

from edgecnn.cli import main
from edgecnn.config import BenchConfig, ExportConfig, TrainConfig


@pytest.mark.parametrize("command, config", [("train", TrainConfig), ("export", ExportConfig), ("bench", BenchConfig)])
def test_every_config_field_is_an_option_with_the_fields_default(command, config):
    params = {p.name: p for p in main.commands[command].params}
    for field in dataclasses.fields(config):
        assert field.name in params, f"{config.__name__}.{field.name} has no option on `edgecnn {command}`"
        option = params[field.name]
        assert option.opts == ["--" + field.name.replace("_", "-")]
        default = field.default
        expected = ",".join(map(str, default)) if isinstance(default, tuple) else default
        assert option.default == expected, field.name


def test_quantize_choices_come_from_the_mode_registry():
    from edgecnn.export.modes import quantize_choices

    options = {p.name: p for p in main.commands["export"].params}
    assert list(options["quantize"].type.choices) == list(quantize_choices())
