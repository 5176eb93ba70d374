"""onnxruntime sessions for edgecnn models. Tier 0: numpy and onnxruntime only, never torch.

:func:`open_session` is the one place a model file becomes an ``InferenceSession``: onnxruntime's
exceptions share no base class (a corrupt file can even raise ``UnicodeDecodeError``), so every way a
load fails is mapped to :class:`ModelFileError` here.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_errors

from edgecnn.errors import ModelFileError
from edgecnn.metadata import ModelMetadata, decode

__all__ = ["ORT_ERRORS", "open_session", "read_metadata"]

# Every exception type onnxruntime raises while loading or running a model.
ORT_ERRORS: tuple[type[BaseException], ...] = tuple(
    getattr(_ort_errors, name) for name in ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf",
                                            "NoSuchFile", "NoModel", "NotImplemented", "RuntimeException",
                                            "EPFail", "EngineError", "NotFound")
    if hasattr(_ort_errors, name)
) + (RuntimeError, ValueError, UnicodeDecodeError)


def open_session(path: str | os.PathLike[str], *, providers: tuple[str, ...] = ("CPUExecutionProvider",),
                 threads: int | None = None, spinning: bool = True) -> ort.InferenceSession:
    """A session with full graph optimisation; a missing or unloadable file is a ModelFileError.

    ``spinning=False`` stops idle worker threads from busy-waiting: needed when several sessions are
    timed side by side on few cores, where one session's spinning threads steal the next one's CPU."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"no model file at {path}")
    if path.stat().st_size == 0:
        raise ModelFileError(f"{path} is empty, not an ONNX model")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: onnxruntime's warnings are not our users' concern
    if threads:
        options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=list(providers))
    except ORT_ERRORS as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path} is not a loadable ONNX model ({reason[:200]})") from None


def read_metadata(session: ort.InferenceSession, *, source: str = "model") -> ModelMetadata:
    return decode(dict(session.get_modelmeta().custom_metadata_map), source=source)
