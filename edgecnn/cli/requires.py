"""Which commands need which extra, checked before any work: one line naming the extra, never a
``ModuleNotFoundError`` traceback on a device install (``pip install edgecnn[cpu]`` has no torch)."""

from __future__ import annotations

import importlib.util

from edgecnn.errors import DependencyError

__all__ = ["EXTRAS", "require"]

# extra → (modules it brings, what it is for)
EXTRAS = {
    "train": (("torch", "torchvision", "onnx"), "the training side"),
    "quantize": (("onnx",), "ONNX graph tools"),
    "plot": (("matplotlib",), "charts"),
    "serve": (("starlette", "uvicorn", "prometheus_client", "python_multipart"), "the HTTP server"),
    "ray": (("ray", "pyarrow", "starlette", "uvicorn"), "Ray Serve and Ray Data"),
}


def require(extra: str, why: str) -> None:
    """Raise :class:`DependencyError` if a module of ``extra`` cannot be imported."""
    modules, _ = EXTRAS[extra]
    missing = [name for name in modules if not _importable(name)]
    if missing:
        raise DependencyError(
            f"{why} needs {', '.join(missing)}, which this install lacks: pip install 'edgecnn[{extra}]'"
        )


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # blocked with sys.modules[name] = None, or half-imported
        return False
