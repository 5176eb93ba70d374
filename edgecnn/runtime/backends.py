"""Backends: the engines a :class:`~edgecnn.runtime.Predictor` runs a model file on, each behind one call
shape, :attr:`Engine.run` (a batch in, scores out), which is also what ``edgecnn.bench`` times.

``onnxruntime`` (CPU, CUDA; the session policy of :mod:`edgecnn.runtime.session`) and ``openvino``
(``pip install "edgecnn[openvino]"``; imported only when asked for; device names as OpenVINO spells them —
"CPU", and "GPU"/"NPU" where present). Each engine reports what really runs: its backend, its device, and
its precision — for OpenVINO read back from the compiled model (the runtime precision of its convolutions
and matrix products), never assumed from what was asked.

OpenVINO runs f32 unless another precision is asked for: its CPU plugin's own default on a CPU with
bf16 units is bf16, a different precision that would fail an fp32 parity gate (its max |Δlogit| against
onnxruntime fp32 on the zoo's nets: BENCHMARKS.md, "Backends"), so it is only ever used by name.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import ConfigError, ModelFileError, ProviderError, describe
from edgecnn.runtime.session import ORT_ERRORS
from edgecnn.runtime.threads import THREAD_POLICY, ThreadPolicy, default_spinning, default_threads

__all__ = [  # THREAD_POLICY, ThreadPolicy, default_threads, default_spinning: runtime/threads.py's, re-exported
    "BACKENDS",
    "OPENVINO_PRECISIONS",
    "THREAD_POLICY",
    "ThreadPolicy",
    "default_spinning",
    "BackendWarning",
    "Engine",
    "recorded_backend",
    "default_threads",
    "onnxruntime_engine",
    "openvino_engine",
    "require_openvino",
]

BACKENDS = ("auto", "onnxruntime", "openvino")  # auto: what export's auto recorded in the file, else onnxruntime
OPENVINO_PRECISIONS = ("f32", "bf16", "f16")  # OpenVINO's inference precision hint, by name only
_FILE_PRECISION = {"none": "f32", "dynamic": "int8", "static": "int8", "fp16": "f16"}  # by quantization mode


_COMPUTE_LAYERS = ("Convolution", "FullyConnected", "MatMul", "GroupConvolution")
_OV_TYPES = {"f32": "f32", "bf16": "bf16", "f16": "f16", "i8": "int8", "u8": "int8"}


@dataclass(frozen=True)
class Engine:
    """A loaded model: ``run(x) -> scores`` and the facts of what runs it."""

    backend: str  # "onnxruntime" or "openvino"
    device: str  # onnxruntime: "cpu" / "cuda"; OpenVINO: its device name ("CPU", "GPU", …)
    precision: str  # what the compute runs in: "f32", "int8", "bf16", "f16"
    handle: Any  # the onnxruntime InferenceSession or the OpenVINO CompiledModel
    run: Callable[[np.ndarray], np.ndarray]
    errors: tuple[type[BaseException], ...]  # what ``run`` raises when the backend fails
    origin: str = "asked for by name"  # backend "auto": where the decision came from (runtime/auto.py)
    stop: Callable[[], None] = lambda: None  # stops the calls in flight and refuses later ones (Ctrl-C, cli/stop.py)


def onnxruntime_engine(session: Any, provider: str, quantization_mode: str | None) -> Engine:
    """An onnxruntime session as an engine; it runs the file as it is, so its precision is the file's."""
    outputs, name = [session.get_outputs()[0].name], session.get_inputs()[0].name
    # On the CPU, the compiled session's own run: InferenceSession.run first checks, in Python, that the feed
    # names every input and holds no foreign OrtValue (~2 µs a call, BENCHMARKS.md "Tuning on the device"); our
    # one input is always fed, a numpy array. On CUDA the public run, whose EP-failure fallback we must keep.
    compiled = getattr(session, "_sess", None) if provider == "cpu" else None
    options = _run_options()  # passed where None was: the same call; its terminate flag is how a run is stopped
    if compiled is not None and callable(getattr(compiled, "run", None)):

        def run(x: np.ndarray) -> np.ndarray:
            return compiled.run(outputs, {name: x}, options)[0]

    else:

        def run(x: np.ndarray) -> np.ndarray:
            return session.run(outputs, {name: x}, options)[0]

    def stop() -> None:
        options.terminate = True  # onnxruntime checks it between the graph's nodes

    precision = _FILE_PRECISION.get(str(quantization_mode), "f32")
    return Engine("onnxruntime", provider, precision, session, run, ORT_ERRORS, stop=stop)


def _run_options() -> Any:
    """One RunOptions for an engine's calls: quiet (a failed run is our one error line, not onnxruntime's log
    line too) unless the edgecnn logger is at DEBUG (``edgecnn -v``)."""
    import logging

    import onnxruntime

    options = onnxruntime.RunOptions()
    options.log_severity_level = 0 if logging.getLogger("edgecnn").isEnabledFor(logging.DEBUG) else 4
    return options


class BackendWarning(UserWarning):
    """The backend auto recorded for a model is not usable here; the model runs on onnxruntime instead."""


def recorded_backend(path: Path, quantization: Mapping[str, Any], provider: str) -> tuple[str, str | None]:
    """What ``backend="auto"`` runs ``path`` on: the backend and precision hint ``auto`` measured fastest
    and recorded in the file's metadata, when that backend is installed here; else onnxruntime, said in
    one line (a BackendWarning). onnxruntime on CUDA stays onnxruntime: auto measured CPUs only."""
    auto = quantization.get("auto")
    runtime = auto.get("runtime") if isinstance(auto, Mapping) else None
    if not isinstance(runtime, Mapping) or runtime.get("backend") in (None, "onnxruntime") or provider == "cuda":
        return "onnxruntime", None
    backend, hint = runtime.get("backend"), runtime.get("hint")
    if backend == "openvino" and (hint is None or hint in OPENVINO_PRECISIONS):
        try:
            require_openvino()
            return "openvino", hint
        except ProviderError:
            why = 'which is not installed here (pip install "edgecnn[openvino]")'
    else:
        why = f"which this edgecnn does not know (recorded {backend!r}, precision {hint!r})"
    warnings.warn(
        f"{path.name}: auto chose {backend} {runtime.get('precision', '')} for it, {why}: running it on onnxruntime",
        BackendWarning,
        stacklevel=4,
    )
    return "onnxruntime", None


def require_openvino() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise ProviderError(
            "backend 'openvino' needs the openvino package, which is not installed: "
            'pip install "edgecnn[openvino]" (or use backend "onnxruntime")'
        ) from exc
    return openvino


def openvino_engine(
    path: Path, *, device: str = "CPU", threads: int | None = None, precision: str | None = None
) -> Engine:
    """Compile ``path`` with OpenVINO on ``device`` in ``precision`` (default f32) and read back what runs."""
    precision = precision or "f32"
    if precision not in OPENVINO_PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(OPENVINO_PRECISIONS)} for OpenVINO (got {precision!r})")
    ov = require_openvino()
    core = ov.Core()
    if device.split(".")[0] not in {d.split(".")[0] for d in core.available_devices}:
        raise ProviderError(
            f"OpenVINO device {device!r} is not available here; OpenVINO sees {', '.join(core.available_devices)}"
        )
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
    threads = threads or default_threads("openvino")
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    errors = (RuntimeError, ValueError, TypeError)
    try:
        compiled = core.compile_model(core.read_model(str(path)), device, config)
    except errors as exc:
        raise ModelFileError(f"OpenVINO cannot load {path} on {device} ({describe(exc)})", path=path) from exc
    local = threading.local()  # an infer request is not thread-safe; one per thread is cheap
    requests: list[Any] = []  # every thread's, for stop()

    def run(x: np.ndarray) -> np.ndarray:
        request = getattr(local, "request", None)
        if request is None:
            request = local.request = compiled.create_infer_request()
            requests.append(request)
        return request.infer({0: x}, share_inputs=True)[0]  # x is only read, during the call; the output is a copy

    def stop() -> None:
        for request in list(requests):
            request.cancel()

    return Engine("openvino", device, runtime_precision(compiled), compiled, run, errors, stop=stop)


def runtime_precision(compiled: Any) -> str:
    """The precision OpenVINO really computes in: int8 when any convolution or matrix product runs on
    8-bit integers, else the float type most of them run in."""
    seen: list[str] = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" in info and info["layerType"].astype(str) in _COMPUTE_LAYERS and "runtimePrecision" in info:
            seen.append(_OV_TYPES.get(info["runtimePrecision"].astype(str), info["runtimePrecision"].astype(str)))
    if "int8" in seen:
        return "int8"
    return max(set(seen), key=seen.count) if seen else "f32"
