"""Tier 0, the device side: numpy, onnxruntime and Pillow, never torch.

``session`` (providers, threads, spinning, load errors), ``metadata`` (card + file facts in
``metadata_props``), ``preprocess`` (pixels → graph input) and ``predictor`` (:class:`Predictor`).
"""

from __future__ import annotations

from edgecnn.runtime.backends import BackendWarning
from edgecnn.runtime.predictor import Prediction, Predictor
from edgecnn.runtime.session import ProviderWarning

__all__ = ["Predictor", "Prediction", "ProviderWarning", "BackendWarning"]
