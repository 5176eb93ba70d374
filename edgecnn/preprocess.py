"""numpy-only preprocessing: pixels → the model's input tensor. One definition for runtime and parity.

The arithmetic is torchvision's ``ToTensor`` + ``Normalize`` in float32 (divide by 255, subtract the
mean, divide by the std), so a float graph fed from here sees bit-identical input to the training loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgecnn.metadata import InputSpec

__all__ = ["normalize", "to_graph_input"]


def normalize(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 N×C×H×W → float32 N×C×H×W, normalised per channel."""
    shape = (1, -1, 1, 1)
    mean_ = np.asarray(mean, dtype=np.float32).reshape(shape)
    std_ = np.asarray(std, dtype=np.float32).reshape(shape)
    return ((images.astype(np.float32) / np.float32(255)) - mean_) / std_


def to_graph_input(images: np.ndarray, spec: InputSpec, mean: Sequence[float],
                   std: Sequence[float]) -> np.ndarray:
    """uint8 N×C×H×W → what the graph takes: raw NHW/NHWC uint8 if preprocessing is baked in,
    else normalised float32 NCHW."""
    if not spec.baked:
        return normalize(images, mean, std)
    if spec.layout == "NHW":
        return np.ascontiguousarray(images[:, 0])
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1))
