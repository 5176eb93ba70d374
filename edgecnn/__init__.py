"""edgecnn: small image CNNs from training to the edge.

Only tier-0 names (numpy, onnxruntime, Pillow) are exported here, so ``import edgecnn`` never pulls
torch. The training side lives in ``edgecnn.train``, ``edgecnn.architectures`` and ``edgecnn.data``.
"""

from __future__ import annotations

from edgecnn.config import TrainConfig
from edgecnn import errors as _errors
from edgecnn.errors import (  # noqa: F401  (re-exported: listed in __all__ through errors.__all__)
    ArchError, ConfigError, DataError, DeviceError, EdgeCNNError, ExportError, ImageError, InputError,
    ModelFileError, ParityError, ProviderError,
)

__version__ = "0.1.0"

__all__ = ["__version__", "TrainConfig", *_errors.__all__]
