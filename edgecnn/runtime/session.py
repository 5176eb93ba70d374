"""Session policy: the one place a model file becomes an ``onnxruntime.InferenceSession``.

Providers, threads and spinning are decided here, and every way a load fails becomes a
:class:`ModelFileError` (onnxruntime's exceptions share no base class; a corrupt file can even raise
``UnicodeDecodeError``). Asked for CUDA, onnxruntime may quietly hand back a CPU session; we check.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path
from typing import Any

from edgecnn.config import PROVIDERS
from edgecnn.errors import ConfigError, ModelFileError, ProviderError, describe
from edgecnn.runtime.install import require_onnxruntime
from edgecnn.runtime.threads import default_spinning, default_threads

__all__ = ["ORT_ERRORS", "ORT_PROVIDERS", "ProviderWarning", "open_session", "create_session", "physical_cores"]

# Our provider names → onnxruntime's, in the order a session should try them.
ORT_PROVIDERS = {"cpu": ("CPUExecutionProvider",), "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider")}
_ORT_ERROR_NAMES = (
    "Fail",
    "InvalidArgument",
    "InvalidGraph",
    "InvalidProtobuf",
    "NoSuchFile",
    "NoModel",
    "NotImplemented",
    "RuntimeException",
    "EPFail",
    "EngineError",
    "NotFound",
)


def _ort_errors() -> tuple[type[BaseException], ...]:
    """Every exception type onnxruntime raises while loading or running a model (none without it)."""
    try:
        from onnxruntime.capi import onnxruntime_pybind11_state as state
    except ImportError:  # no onnxruntime: require_onnxruntime() says so when a session is wanted
        return (RuntimeError, ValueError, UnicodeDecodeError)
    return tuple(getattr(state, n) for n in _ORT_ERROR_NAMES if hasattr(state, n)) + (
        RuntimeError,
        ValueError,
        UnicodeDecodeError,
    )


ORT_ERRORS: tuple[type[BaseException], ...] = _ort_errors()


class ProviderWarning(UserWarning):
    """The requested execution provider was not available and ``allow_fallback`` let the CPU run."""


def physical_cores() -> int:
    """Physical cores: what onnxruntime's default intra-op pool uses (logical CPUs count hyper-threads)."""
    cores: set[tuple[str, str]] = set()
    with contextlib.suppress(OSError):
        package = "0"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "physical id":
                package = value
            elif key == "core id":
                cores.add((package, value))
    return len(cores) or os.cpu_count() or 1


def open_session(
    path: str | os.PathLike[str], *, provider: str = "cpu", threads: int | None = None, spinning: bool = True
) -> Any:
    """A session with full graph optimisation on ``provider`` ("cpu" or "cuda"); a missing or unloadable
    file is a ModelFileError.

    ``spinning=False`` stops idle worker threads from busy-waiting: needed when several sessions are
    timed side by side on few cores, where one session's spinning threads steal the next one's CPU."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"no model file at {path}", path=path)
    if path.stat().st_size == 0:
        raise ModelFileError(f"{path} is empty, not an ONNX model", path=path)
    ort = require_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: onnxruntime's warnings are not our users' concern
    if threads:
        options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    try:
        if provider == "cpu":
            return ort.InferenceSession(str(path), sess_options=options, providers=list(ORT_PROVIDERS["cpu"]))
        # Only a CUDA request can make onnxruntime fall back: it then prints an "EP Error … Falling back"
        # banner on stdout and warns; we check the provider it really used and say so in our words.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module="onnxruntime")
            return ort.InferenceSession(str(path), sess_options=options, providers=list(ORT_PROVIDERS[provider]))
    except ORT_ERRORS as exc:
        raise ModelFileError(f"{path} is not a loadable ONNX model ({describe(exc)})", path=path) from exc


def create_session(
    path: Path,
    provider: str,
    *,
    threads: int | None = None,
    allow_fallback: bool = False,
    spinning: bool | None = None,
) -> tuple[Any, str]:
    """Resolve ``provider`` ("auto", "cpu", "cuda"), create the session, and return it with the provider
    that really runs it. ``threads``/``spinning`` left None follow the thread policy (runtime/threads.py)."""
    if provider not in PROVIDERS:
        raise ProviderError(f"provider must be one of {', '.join(PROVIDERS)} (got {provider!r})")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= 1024):
        raise ConfigError(
            f"threads must be a whole number from 1 to 1024, or None for onnxruntime's default (got {threads!r})"
        )
    ort = require_onnxruntime()
    offered = "CUDAExecutionProvider" in ort.get_available_providers()
    wants_cuda = provider == "cuda" or (provider == "auto" and offered)
    if provider == "cuda" and not offered:
        _refuse_or_warn(
            allow_fallback,
            f"provider 'cuda' asked for, but this onnxruntime ({ort.__version__}) "
            f"offers only {', '.join(ort.get_available_providers())}; install onnxruntime-gpu "
            "(pip install edgecnn[gpu]) or use provider 'cpu' or 'auto'",
        )
        wants_cuda = False
    spinning = default_spinning() if spinning is None else spinning
    threads = threads or default_threads("onnxruntime")
    session = open_session(path, provider="cuda" if wants_cuda else "cpu", threads=threads, spinning=spinning)
    used = "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
    if provider == "cuda" and wants_cuda and used != "cuda":
        _refuse_or_warn(
            allow_fallback,
            "provider 'cuda' asked for, but onnxruntime could not start it "
            "(no usable GPU, or CUDA/cuDNN libraries missing) and made a CPU session",
        )
    return session, used


def _refuse_or_warn(allow_fallback: bool, message: str) -> None:
    if not allow_fallback:
        raise ProviderError(message + "; pass allow_fallback=True to run on the CPU instead")
    warnings.warn(message + "; running on the CPU", ProviderWarning, stacklevel=4)
