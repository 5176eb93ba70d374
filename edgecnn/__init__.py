"""edgecnn: small image CNNs from training to the edge.

Only tier-0 names (numpy, onnxruntime, Pillow) are exported here, so ``import edgecnn`` never pulls
torch. The training side lives in ``edgecnn.training``, the export side in ``edgecnn.export``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from edgecnn import errors as _errors  # noqa: E402  (after __version__: the card and metadata read it)
from edgecnn.card import ModelCard  # noqa: E402
from edgecnn.config import BenchConfig, ExportConfig, ServeConfig, TrainConfig  # noqa: E402
from edgecnn.errors import (  # noqa: E402, F401  (re-exported: listed in __all__ through errors.__all__)
    ArchError,
    ClusterError,
    ConfigError,
    DataError,
    DataWarning,
    DependencyError,
    DeviceError,
    EdgeCNNError,
    ExportError,
    ImageError,
    InputError,
    ModelFileError,
    ParityError,
    ProviderError,
    TargetError,
    TrainingError,
    WriteError,
    describe,
)

__all__ = ["__version__", "ModelCard", "TrainConfig", "ExportConfig", "BenchConfig", "ServeConfig", *_errors.__all__]
