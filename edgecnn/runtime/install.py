"""Which onnxruntime this process has, and whether the install can be trusted.

onnxruntime comes as separate distributions (``onnxruntime`` for the CPU, ``onnxruntime-gpu`` for CUDA,
…) that all install the same ``onnxruntime`` package: with two of them installed one overwrites the
other's files, ``pip check`` stays clean, and CUDA silently disappears. edgecnn's extras install exactly
one (``edgecnn[cpu]`` or ``edgecnn[gpu]``); this module says so in one line when that is not the case.

It also decides how loud onnxruntime's own C++ logger is: its coloured lines (onnxruntime-gpu without
CUDA libraries prints them on every session) follow the ``edgecnn`` logger's level, so they stay off the
user's stderr unless the user asks for them (``logging.getLogger("edgecnn").setLevel(logging.DEBUG)``,
or ``edgecnn -v``); what matters reaches the user as our own error or warning.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
from typing import Any

from edgecnn.errors import ProviderError

__all__ = ["onnxruntime_distributions", "require_onnxruntime", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'edgecnn[cpu]' (or 'edgecnn[gpu]' for CUDA)"
_DISTRIBUTIONS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-qnn",
    "onnxruntime-silicon",
    "onnxruntime-training",
)
_log = logging.getLogger("edgecnn.runtime")


def onnxruntime_distributions() -> dict[str, str]:
    """Installed onnxruntime builds: distribution name → version."""
    found = {}
    for name in _DISTRIBUTIONS:  # looked up by name: much cheaper than listing every distribution
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


@functools.lru_cache(maxsize=1)
def require_onnxruntime() -> Any:
    """The ``onnxruntime`` module, once the install is known to hold exactly one build; else a
    :class:`ProviderError` naming what is installed and the fix."""
    builds = onnxruntime_distributions()
    if len(builds) > 1:
        names = ", ".join(f"{name} {version}" for name, version in builds.items())
        raise ProviderError(
            f"several onnxruntime builds are installed ({names}) and overwrite each other's files; "
            f"keep one: pip uninstall -y {' '.join(builds)} && {INSTALL_HINT}"
        )
    try:
        import onnxruntime
    except ImportError as exc:
        raise ProviderError(_import_failure(exc, builds)) from exc
    _quiet_native_logger(onnxruntime)
    return onnxruntime


def _import_failure(exc: ImportError, builds: dict[str, str]) -> str:
    if not builds:
        return f"onnxruntime is not installed; {INSTALL_HINT}"
    import numpy

    ((name, version),) = builds.items()
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    message = f"{name} {version} is installed but does not import ({reason})"
    if int(numpy.__version__.split(".")[0]) >= 2 and _release(version) < (1, 19):  # built against numpy 1.x
        return f"{message}; it predates numpy {numpy.__version__}: pip install -U {name}"
    return f"{message}; reinstall it: pip install --force-reinstall {name}"


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:2] if part.isdigit())


def _quiet_native_logger(ort: Any) -> None:
    """onnxruntime's severities: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal."""
    level = logging.getLogger("edgecnn").getEffectiveLevel()
    severity = 0 if level <= logging.DEBUG else 2 if level <= logging.INFO else 4
    ort.set_default_logger_severity(severity)
    _log.debug("onnxruntime %s from %s; native log severity %d", ort.__version__, ort.__file__, severity)
