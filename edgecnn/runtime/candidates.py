"""What ``auto`` measures: each built file variant on each available backend, in each precision that
backend really runs on this machine.

onnxruntime runs every variant as the file says. OpenVINO runs the fp32 file in f32 and in every reduced
float it really computes in here (bf16 on a CPU with bf16 units; asked for bf16 elsewhere it computes in
f32 — the same candidate twice, so it is left out), and the static (QDQ int8) file as int8. dynamic's
per-call activation quantization is onnxruntime's own operator set (DynamicQuantizeLinear,
MatMulInteger); fp16 is never an auto candidate.

On the device, ``edgecnn tune`` (tuning.py) opens each configuration on its own — the file on onnxruntime, on
OpenVINO in a precision, then again at each thread count of :func:`thread_ladder` — with the functions at the
end of this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

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
from edgecnn.runtime.gates import Gates, gates_for_precision
from edgecnn.runtime.session import open_session, physical_cores

__all__ = [
    "available_backends",
    "open_contenders",
    "openvino_options",
    "thread_ladder",
    "policy_threads",
    "has_openvino",
    "open_ort",
    "open_ov",
    "thread_variants",
    "thread_variant",
]

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


# ---- on the device (tuning.py): each configuration opened on its own, at a thread count ----


def thread_ladder(cores: int) -> tuple[int, ...]:
    """1, 2, 4 … and ``cores`` itself: the thread counts worth timing on a machine with ``cores`` cores."""
    ladder = {cores}
    n = 1
    while n < cores:
        ladder.add(n)
        n *= 2
    return tuple(sorted(ladder))


def policy_threads(backend: str) -> int:
    """The threads the thread policy gives ``backend``, as a number (its default: one per physical core)."""
    return default_threads(backend) or physical_cores()


def has_openvino(backends: Sequence[str] | None) -> bool:
    """Whether OpenVINO is to be measured: installed and not left out (asked for and missing: a ProviderError)."""
    if backends is not None and "openvino" not in backends:
        return False
    try:
        require_openvino()
    except ProviderError:
        if backends is not None:
            raise
        return False
    return True


def open_ort(mode: str, path: Path, threads: int, gates: Callable[[str], Gates], session: Any = None) -> Contender:
    """The file on onnxruntime at ``threads``, spinning as the policy says (``session``: one already open)."""
    spinning = default_spinning()
    session = session or open_session(path, threads=threads, spinning=spinning)
    engine = onnxruntime_engine(session, "cpu", mode)
    return Contender(mode, mode, path, engine, gates(engine.precision), threads=threads, spinning=spinning)


def open_ov(mode: str, path: Path, hint: str, threads: int, gates: Callable[[str], Gates]) -> Contender | None:
    """The file on OpenVINO in ``hint``; None when this CPU does not really compute in that precision."""
    engine = openvino_engine(path, precision=hint, threads=threads)
    if hint != "f32" and engine.precision != hint:  # not computed in that precision on this CPU
        return None
    name = f"{mode}@openvino" + ("" if hint == "f32" else f":{hint}")
    return Contender(name, mode, path, engine, gates(engine.precision), hint=hint, threads=threads, spinning=False)


def thread_variants(base: Contender, ladder: Sequence[int]) -> list[tuple[int, bool]]:
    """The thread counts of ``ladder`` (and spinning) to try for ``base`` beside its own."""
    if base.engine.backend == "openvino":
        return [(t, False) for t in ladder if t != base.threads]
    tried = {(base.threads, base.spinning if base.threads > 1 else True)}
    options = [(t, s) for t in ladder for s in ((True,) if t == 1 else (True, False))]
    return [(t, s) for t, s in options if (t, s) not in tried]


def thread_variant(base: Contender, threads: int, spinning: bool, gates: Callable[[str], Gates]) -> Contender:
    """``base`` opened again at ``threads`` (and ``spinning``, on onnxruntime)."""
    name = f"{base.name} t{threads}" + ("" if spinning or threads == 1 else " no-spin")
    if base.engine.backend == "openvino":
        engine = openvino_engine(base.path, precision=base.hint, threads=threads)
    else:
        engine = onnxruntime_engine(open_session(base.path, threads=threads, spinning=spinning), "cpu", base.mode)
    return Contender(name, base.mode, base.path, engine, gates(engine.precision), base.hint, threads, spinning)
