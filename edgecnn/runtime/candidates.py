"""What ``auto`` measures: each built file variant on each available backend, in each precision that
backend really runs on this machine.

onnxruntime runs every variant as the file says. OpenVINO runs the fp32 file in f32 and in every reduced
float it really computes in here (bf16 on a CPU with bf16 units; asked for bf16 elsewhere it computes in
f32 — the same candidate twice, so it is left out), and the static (QDQ int8) file as int8. dynamic's
per-call activation quantization is onnxruntime's own operator set (DynamicQuantizeLinear,
MatMulInteger); fp16 is never an auto candidate.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from edgecnn.config import AUTO_BACKENDS
from edgecnn.errors import ModelFileError, ProviderError
from edgecnn.runtime.backends import (
    OPENVINO_PRECISIONS,
    default_spinning,
    default_threads,
    onnxruntime_engine,
    openvino_engine,
    require_openvino,
)
from edgecnn.runtime.fastest import Contender
from edgecnn.runtime.gates import gates_for_precision
from edgecnn.runtime.session import open_session

__all__ = ["available_backends", "open_contenders", "openvino_options"]

_log = logging.getLogger(__name__)
_OPENVINO_MODES = {"none": OPENVINO_PRECISIONS, "static": ("f32",)}  # file variant → OpenVINO precision hints


def available_backends(asked: Sequence[str] | None) -> tuple[str, ...]:
    """``asked`` (the config has checked the names; one not installed is an error here), or every
    installed one."""
    if asked is not None:
        if "openvino" in asked:
            require_openvino()
        return tuple(asked)
    try:
        require_openvino()
    except ProviderError:  # not installed: auto measures what is
        return ("onnxruntime",)
    return AUTO_BACKENDS


def open_contenders(files: Mapping[str, Path], *, backends: Sequence[str], max_accuracy_drop: float) -> list[Contender]:
    """Every candidate configuration of ``files`` (mode → path; "none", the fp32 file, among them)."""
    threads, spinning = default_threads("onnxruntime"), default_spinning()
    contenders = []
    for mode, path in files.items():
        # as a Predictor runs it (the thread policy): a non-spinning session would lose ~40 µs a call at
        # batch 1 waking its workers (BENCHMARKS.md, "Threads") and hand batch 1 to other backends unfairly
        session = open_session(path, threads=threads, spinning=spinning)
        engine = onnxruntime_engine(session, "cpu", mode)
        contenders.append(Contender(mode, mode, path, engine, gates_for_precision(engine.precision, max_accuracy_drop)))
    if "openvino" in backends:
        contenders += _openvino_contenders(files, max_accuracy_drop)
    return contenders


def openvino_options(mode: str) -> tuple[str, ...]:
    """The OpenVINO precision hints a file variant is a candidate in (none for dynamic and fp16 files)."""
    return _OPENVINO_MODES.get(mode, ())


def _openvino_contenders(files: Mapping[str, Path], max_accuracy_drop: float) -> list[Contender]:
    contenders = []
    for mode, path in files.items():
        for hint in openvino_options(mode):
            try:
                engine = openvino_engine(path, precision=hint)  # threads: the policy's, as a Predictor gets
            except ModelFileError as exc:  # an op OpenVINO lacks: onnxruntime's candidates still stand
                _log.info("auto: %s on OpenVINO (%s) left out: %s", mode, hint, exc)
                continue
            if hint != "f32" and engine.precision != hint:  # not computed in that precision on this machine
                continue
            name = f"{mode}@openvino" + ("" if hint == "f32" else f":{hint}")
            gates = gates_for_precision(engine.precision, max_accuracy_drop)
            contenders.append(Contender(name, mode, path, engine, gates, hint=hint))
    return contenders
