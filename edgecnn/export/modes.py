"""Quantization modes as a registry (the architecture registry's style): one entry per mode.

A mode is a :class:`QuantMode`: a name, one ``build(src, dst, context) -> Built`` signature (built.py),
whether the exact (fp32) parity gates apply to it, and whether ``auto`` measures it. The export job, the
gates, ``auto`` and the CLI's choices all read this registry, and it validates its own names (:func:`get_mode`),
so adding a mode is one ``register_mode`` call. This module imports neither torch nor onnx: builders import
their tools inside.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgecnn.errors import ConfigError
from edgecnn.export.built import BuildContext, Built

__all__ = [
    "AUTO",
    "QuantMode",
    "register_mode",
    "get_mode",
    "check_requested",
    "list_modes",
    "quantize_choices",
    "auto_candidates",
]

AUTO = "auto"  # not a mode: measure the modes with in_auto=True and keep the fastest that passes its gates


Builder = Callable[[Path, Path, BuildContext], Built]


@dataclass(frozen=True)
class QuantMode:
    name: str
    build: Builder
    summary: str
    exact: bool = False  # the fp32 gates (max |Δlogit| ≤ 1e-4, 100 % agreement) apply
    in_auto: bool = False  # auto measures it as a candidate


_MODES: dict[str, QuantMode] = {}


def register_mode(mode: QuantMode) -> QuantMode:
    """Add ``mode``; a second mode with the same name (or the reserved "auto") is a programming error."""
    if mode.name in _MODES or mode.name == AUTO:
        raise ValueError(f"quantization mode {mode.name!r} is already registered")
    _MODES[mode.name] = mode
    return mode


def get_mode(name: str) -> QuantMode:
    try:
        return _MODES[name]
    except KeyError as exc:
        raise ConfigError(
            f"unknown quantization mode {name!r}; choose one of: {', '.join(quantize_choices())}"
        ) from exc


def check_requested(name: str) -> str:
    """``name`` when it is a mode or "auto"; else the ConfigError :func:`get_mode` raises."""
    if name != AUTO:
        get_mode(name)
    return name


def list_modes() -> list[str]:
    """Registered names, in registration order ("none" first)."""
    return list(_MODES)


def quantize_choices() -> tuple[str, ...]:
    return (*_MODES, AUTO)


def auto_candidates() -> list[str]:
    return [name for name, mode in _MODES.items() if mode.in_auto]


def _none(src: Path, dst: Path, context: BuildContext) -> Built:
    shutil.copyfile(src, dst)
    return Built({})


def _dynamic(src: Path, dst: Path, context: BuildContext) -> Built:
    from edgecnn.export.quantize import quantize_dynamic_int8

    settings = context.settings
    return quantize_dynamic_int8(src, dst, ops=settings.quantize_ops, min_weight_elements=settings.min_weight_elements)


def _static(src: Path, dst: Path, context: BuildContext) -> Built:
    from edgecnn.export.calibrate import quantize_calibrated

    return quantize_calibrated(src, dst, context)


def _fp16(src: Path, dst: Path, context: BuildContext) -> Built:
    from edgecnn.export.quantize import convert_fp16

    return convert_fp16(src, dst)


register_mode(QuantMode("none", _none, "fp32, as exported", exact=True, in_auto=True))
register_mode(QuantMode("dynamic", _dynamic, "int8 MatMul/Gemm weights, activations quantized per call", in_auto=True))
register_mode(QuantMode("static", _static, "QDQ int8, per-channel weights, calibrated uint8 activations", in_auto=True))
register_mode(QuantMode("fp16", _fp16, "float16 weights and compute, float32 input and output"))
