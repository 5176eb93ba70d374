"""What ``edgecnn check`` runs on every target, prepared once on the host: the labelled test images in the
graph's input form, the reference file, and one real image (as a PNG) for the device install's ``predict``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.config import CheckConfig
from edgecnn.data.builtin import resolve_data_root
from edgecnn.data.labelled import open_labelled
from edgecnn.errors import ConfigError, DataError
from edgecnn.runtime.metadata import ModelMetadata, read_metadata
from edgecnn.runtime.preprocess import to_graph_input
from edgecnn.runtime.session import open_session
from edgecnn.runtime.zoo import is_zoo_spec, zoo_variant_files

__all__ = ["CheckInputs", "prepare_check"]


@dataclass(frozen=True)
class CheckInputs:
    meta: ModelMetadata
    feed: np.ndarray  # the images as the graph takes them
    labels: np.ndarray
    data: str  # what they are
    reference: Path | None  # an fp32 file to judge against; None: the model itself, run here
    image: Path  # the first image, as a PNG file


def prepare_check(
    spec: str, path: Path, config: CheckConfig, *, data_root: str | None, zoo_dir: str | None, work: Path
) -> CheckInputs:
    meta = read_metadata(open_session(path), source=str(path))
    data = config.data or meta.card.dataset
    if not data:
        raise ConfigError(f"{path} does not say what it was trained on: pass --data DATASET|FOLDER")
    labelled = open_labelled(
        data, shape=meta.card.input_shape, classes=meta.card.class_names, data_root=resolve_data_root(data_root)
    )
    images, labels = labelled.parity_images(config.samples)
    if len(images) < config.samples:
        raise DataError(f"{data} has {len(images)} readable test images; --samples asks for {config.samples}")
    norm = meta.card.normalization
    feed = to_graph_input(images, meta.input, norm.mean, norm.std)
    image = work / "image.png"
    _save_png(images[0], image)
    return CheckInputs(meta, feed, labels, labelled.name, _reference(spec, path, meta, config, zoo_dir), image)


def _reference(spec: str, path: Path, meta: ModelMetadata, config: CheckConfig, zoo_dir: str | None) -> Path | None:
    if config.reference:
        reference = Path(config.reference)
        ref_meta = read_metadata(open_session(reference), source=str(reference))
        if ref_meta.quantization.get("mode", "none") != "none":
            raise ConfigError(f"--reference {reference} is not an fp32 file (it is {ref_meta.quantization['mode']})")
        if ref_meta.card.class_names != meta.card.class_names:
            raise ConfigError(f"--reference {reference} predicts other classes than {path}")
        return reference
    if is_zoo_spec(spec) and meta.quantization.get("mode", "none") != "none":
        return zoo_variant_files(spec, zoo_dir).get("none")
    return None


def _save_png(image: np.ndarray, out: Path) -> None:
    from PIL import Image

    pixels = image[0] if image.shape[0] == 1 else np.transpose(image, (1, 2, 0))
    Image.fromarray(np.ascontiguousarray(pixels)).save(out)
