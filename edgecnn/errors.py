"""The errors edgecnn raises: every failure of the public API is an :class:`EdgeCNNError`.

::

    EdgeCNNError                 base class; the CLI prints its message as one line and exits 1
    ├── ConfigError              a setting is invalid or two settings contradict each other
    │   └── ArchError            unknown or misused architecture name (the message lists valid names)
    ├── DataError                a dataset is missing, unreadable or malformed
    ├── ModelFileError           a checkpoint or model file is missing, corrupt or not ours
    ├── DeviceError              a requested torch device (e.g. cuda) is not available
    ├── ExportError              torch → ONNX conversion or its checks failed
    ├── ParityError              the exported model disagrees with torch beyond the gates
    ├── ProviderError            an onnxruntime execution provider is unavailable or failed
    └── InputError               input handed to the runtime is invalid (dtype, shape, NaN, …)
        └── ImageError           an image file cannot be decoded or is refused (format, size)

Messages say what was wrong and what to do about it; they never need a traceback to be understood.
"""

from __future__ import annotations

__all__ = [
    "EdgeCNNError",
    "ConfigError",
    "ArchError",
    "DataError",
    "ModelFileError",
    "DeviceError",
    "ExportError",
    "ParityError",
    "ProviderError",
    "InputError",
    "ImageError",
]


class EdgeCNNError(Exception):
    """Base class of every error edgecnn raises on purpose."""


class ConfigError(EdgeCNNError):
    """A setting is invalid, or settings contradict each other."""


class ArchError(ConfigError):
    """An architecture name is unknown; the message lists the registered names."""


class DataError(EdgeCNNError):
    """A dataset is missing, unreadable or malformed."""


class ModelFileError(EdgeCNNError):
    """A checkpoint or model file is missing, corrupt, or not an edgecnn artifact."""


class DeviceError(EdgeCNNError):
    """A requested torch device is not available on this machine."""


class ExportError(EdgeCNNError):
    """Converting a model to ONNX, or checking the result, failed."""


class ParityError(EdgeCNNError):
    """The exported model disagrees with the torch model beyond the parity gates."""


class ProviderError(EdgeCNNError):
    """An onnxruntime execution provider is unavailable or did not run."""


class InputError(EdgeCNNError):
    """Input handed to the runtime is invalid."""


class ImageError(InputError):
    """An image file cannot be decoded, or is refused (format, pixel count)."""
