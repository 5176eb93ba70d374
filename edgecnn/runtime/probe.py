"""The images a configuration is gated on where it runs: the probe.

``edgecnn tune`` and ``backend="auto"`` judge each configuration on the device, where the dataset is not.
For a model trained on a built-in dataset (MNIST, Fashion-MNIST) edgecnn ships a probe of real test images —
100 of each class, the first of each in the test split (``tools/make_probes.py`` writes them) — so
quantized and reduced-precision configurations are held to auto's full gates (top-1 agreement and the
accuracy drop) on real labelled data. Any other model gets a seeded synthetic probe (uniform pixels, through
the model's own normalization) and no labels: then only the exact gates can be judged (see tuning.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.runtime.metadata import ModelMetadata
from edgecnn.runtime.preprocess import to_graph_input

__all__ = ["PROBE_DIR", "PROBE_PER_CLASS", "Probe", "probe_for"]

PROBE_DIR = Path(__file__).with_name("probes")
PROBE_PER_CLASS = 100  # 1,000 images: 0.3 pp of accuracy is 3 of them, and gating one configuration of a zoo
#   net takes 25–130 ms on a 2-core x86 box (a Predictor's whole tuning gets 1.3 s)
_SYNTHETIC = 256  # rows of the synthetic probe: enough to catch a wrong kernel, cheap on any model


@dataclass(frozen=True)
class Probe:
    feed: np.ndarray  # the graph's input form
    labels: np.ndarray | None  # None: synthetic images, no labels
    source: str  # "mnist probe (1,000 real test images)", "synthetic (256 seeded images, no labels)"


def probe_for(metadata: ModelMetadata) -> Probe:
    """The probe for a model: its built-in dataset's real images when its input is that dataset's, else
    synthetic images."""
    card, spec = metadata.card, metadata.input
    norm = card.normalization
    shipped = _shipped(card.dataset)
    if shipped is not None and card.input_shape == (1, *shipped[0].shape[1:]) and len(card.class_names) == 10:
        images, labels = shipped
        feed = to_graph_input(images[:, None], spec, norm.mean, norm.std)
        return Probe(feed, labels.astype(np.int64), f"{card.dataset} probe ({len(images):,} real test images)")
    pixels = np.random.default_rng(0).integers(0, 256, (_SYNTHETIC, *card.input_shape), dtype=np.uint8)
    feed = to_graph_input(pixels, spec, norm.mean, norm.std)
    return Probe(feed, None, f"synthetic ({_SYNTHETIC} seeded images, no labels)")


@functools.cache
def _shipped(dataset: str) -> tuple[np.ndarray, np.ndarray] | None:
    path = PROBE_DIR / f"{dataset}.npz"
    if not dataset or "/" in dataset or not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        return data["images"], data["labels"]
