"""The errors edgecnn raises: every failure of the public API is an :class:`EdgeCNNError`.

::

    EdgeCNNError                 base class; the CLI prints its message as one line and exits 1
    ├── ConfigError              a setting is invalid or two settings contradict each other
    │   └── ArchError            unknown or misused architecture name (the message lists valid names)
    ├── DataError                a dataset is missing, unreadable or malformed          (.path)
    ├── ModelFileError           a checkpoint or model file is missing, corrupt or not ours (.path)
    ├── WriteError               an artifact cannot be written (disk full, permission); the old file is kept (.path)
    ├── DeviceError              a requested torch device (e.g. cuda) is not available
    ├── TrainingError            training diverged (a NaN or infinite loss); the last good epoch is kept
    ├── ExportError              torch → ONNX conversion or its checks failed
    ├── ParityError              the exported model disagrees with torch beyond the gates (.report)
    ├── ProviderError            an onnxruntime execution provider is unavailable or failed
    ├── TargetError              a check target (QEMU, the arm64 root, Node) cannot be made or did not run
    ├── ClusterError             a Ray cluster cannot be joined or started, or lost the work (--engine ray)
    ├── DependencyError          an optional dependency is missing (the message names the extra)
    └── InputError               input handed to the runtime is invalid (dtype, shape, NaN, …)
        └── ImageError           an image file cannot be decoded or is refused (format, size) (.path)

Messages say what was wrong and what to do about it; they never need a traceback to be understood.
A foreign exception that caused ours stays on ``__cause__`` (``raise X(...) from exc``), and
:func:`describe` is the one way its useful line gets into our message (as httpx keeps the request on its
errors, ours keep the file or the report they are about).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = [
    "EdgeCNNError",
    "ConfigError",
    "ArchError",
    "DataError",
    "DataWarning",
    "ModelFileError",
    "WriteError",
    "ClusterError",
    "DeviceError",
    "TrainingError",
    "ExportError",
    "ParityError",
    "ProviderError",
    "TargetError",
    "DependencyError",
    "InputError",
    "ImageError",
    "describe",
]

_MAX_CHARS = 600  # longer messages keep their head and their tail, where libraries put the cause


def describe(exc: BaseException) -> str:
    """The useful part of a foreign exception's message, on one line.

    One line is returned whole; several lines become "first … last" (the first line names what failed,
    the last usually why: onnxruntime ends with "Unsupported model IR version", torch.load with the
    offending global). An over-long line loses its middle, never its end. An empty message gives the type.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = lines[0] if len(lines) == 1 else f"{lines[0]} … {lines[-1]}"
    if len(text) > _MAX_CHARS:
        text = text[: _MAX_CHARS // 3] + " … " + text[-(2 * _MAX_CHARS) // 3 :]
    return text


class EdgeCNNError(Exception):
    """Base class of every error edgecnn raises on purpose."""


class ConfigError(EdgeCNNError):
    """A setting is invalid, or settings contradict each other."""


class ArchError(ConfigError):
    """An architecture name is unknown; the message lists the registered names."""


class _PathError(EdgeCNNError):
    """An error about one file or folder, kept on ``.path``."""

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None


class DataError(_PathError):
    """A dataset is missing, unreadable or malformed."""


class DataWarning(UserWarning):
    """Something in a dataset was left out (an unreadable image in a user's folder); the run goes on."""


class ModelFileError(_PathError):
    """A checkpoint or model file is missing, corrupt, or not an edgecnn artifact."""


class WriteError(_PathError):
    """An artifact (or a temporary file on the way to it) cannot be written: the disk is full, the folder or
    the file is not writable. Nothing half-written is left, and the file it would have replaced is kept."""


class DeviceError(EdgeCNNError):
    """A requested torch device is not available on this machine."""


class TrainingError(EdgeCNNError):
    """Training went wrong in a way a setting caused (a NaN or infinite loss); the message says which."""


class ExportError(EdgeCNNError):
    """Converting a model to ONNX, or checking the result, failed."""


class ParityError(EdgeCNNError):
    """The exported model disagrees with its reference beyond the gates; ``.report`` holds the figures."""

    def __init__(self, message: str, *, report: Any = None) -> None:
        super().__init__(message)
        self.report = report


class ProviderError(EdgeCNNError):
    """An onnxruntime execution provider is unavailable or did not run."""


class TargetError(EdgeCNNError):
    """A check target cannot be made here, or did not run (QEMU, the arm64 root, Node, onnxruntime-web)."""


class ClusterError(EdgeCNNError):
    """A Ray cluster could not be joined or started, or failed the work given to it (``--engine ray``)."""


class DependencyError(EdgeCNNError):
    """An optional dependency (torch, onnx, matplotlib, …) is not installed; the message says which extra."""


class InputError(EdgeCNNError):
    """Input handed to the runtime is invalid."""


class ImageError(InputError):
    """An image file cannot be decoded, or is refused (format, pixel count)."""

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None
