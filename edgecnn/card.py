"""ModelCard: THE description of a trained model. Tier 0.

The checkpoint (``training/checkpoint.py``), the ONNX ``metadata_props`` (``runtime/metadata.py``) and the
zoo's safetensors headers all serialize this one object (:meth:`ModelCard.to_dict`), so what a model is never
gets restated by hand; the zoo's ``models/*/card.md`` pages are drawn from its fields and the measured
figures by ``tools/zoo_cards.py``.
(torchvision binds a trained artifact and its meta in one ``Weights`` object; timm has ``PretrainedCfg``.)
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgecnn.errors import ModelFileError

__all__ = ["Normalization", "Lineage", "ModelCard", "config_hash", "class_names_problem"]


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std applied after scaling pixels to [0, 1]."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}


@dataclass(frozen=True)
class Lineage:
    """What made the model: enough to tell two models apart and to find the run that made one."""

    config_hash: str = ""  # SHA-256 of the training config (see config_hash)
    data_checksum: str = ""  # SHA-256 of the training and test pixels and labels
    edgecnn_version: str = ""  # the edgecnn that trained it

    def to_dict(self) -> dict[str, str]:
        return {
            "config_hash": self.config_hash,
            "data_checksum": self.data_checksum,
            "edgecnn_version": self.edgecnn_version,
        }

    def summary(self) -> str:
        """One line: the hashes' first 12 hex digits and the version ("?" where unknown)."""
        return (
            f"config {self.config_hash[:12] or '?'}, data {self.data_checksum[:12] or '?'}, "
            f"trained with edgecnn {self.edgecnn_version or '?'}"
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lineage:
        return cls(**{k: str(data.get(k, "")) for k in ("config_hash", "data_checksum", "edgecnn_version")})


@dataclass(frozen=True)
class ModelCard:
    """A trained model: what it is, what it takes, what it was trained on, how well it did."""

    arch: str  # registry name, or the class name of a foreign module
    class_names: tuple[str, ...]  # index = class id
    input_shape: tuple[int, int, int]  # (C, H, W) of one image
    normalization: Normalization
    dataset: str = ""  # "mnist", "fashion-mnist" or the image folder's path
    metrics: Mapping[str, float] = field(default_factory=dict)  # test_accuracy, test_loss, epochs
    lineage: Lineage = Lineage()

    @property
    def test_accuracy(self) -> float | None:
        return self.metrics.get("test_accuracy")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON, and ``torch.load(weights_only=True)``)."""
        return {
            "arch": self.arch,
            "class_names": list(self.class_names),
            "input_shape": list(self.input_shape),
            "normalization": self.normalization.to_dict(),
            "dataset": self.dataset,
            "metrics": dict(self.metrics),
            "lineage": self.lineage.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "model") -> ModelCard:
        """The inverse of :meth:`to_dict`, checked field by field: a wrong type, a missing key, a shape that
        is not (C, H, W), normalization that does not fit the channels or is not finite and positive, is
        a :class:`ModelFileError` on ``source`` naming the field."""
        if not isinstance(data, Mapping):
            raise ModelFileError(f"{source}: its model card is {type(data).__name__}, not a mapping")
        shape = _int_list(data, "input_shape", source, length=3, low=1, high=_MAX_SIDE)
        if shape[0] > 4:
            raise ModelFileError(f"{source}: model card input_shape {shape} has {shape[0]} channels; 1–4 are images")
        norm = data.get("normalization")
        if not isinstance(norm, Mapping):
            raise ModelFileError(f"{source}: model card field 'normalization' must be a mapping of mean and std")
        mean = _float_list(norm, "mean", source, length=shape[0])
        std = _float_list(norm, "std", source, length=shape[0])
        if min(std) <= 0:
            raise ModelFileError(f"{source}: model card normalization std must be > 0 (got {list(std)})")
        classes = data.get("class_names")
        if (
            not isinstance(classes, (list, tuple))
            or not 2 <= len(classes) <= _MAX_CLASSES
            or not all(isinstance(c, str) for c in classes)
        ):
            raise ModelFileError(f"{source}: model card field 'class_names' must list 2–{_MAX_CLASSES:,} names")
        if class_names_problem(classes):
            raise ModelFileError(f"{source}: model card field 'class_names' {class_names_problem(classes)}")
        metrics = data.get("metrics", {})
        if not isinstance(metrics, Mapping) or not all(_finite(v) for v in metrics.values()):
            raise ModelFileError(f"{source}: model card field 'metrics' must map names to finite numbers")
        lineage = data.get("lineage", {})
        if not isinstance(lineage, Mapping) or not all(isinstance(v, str) for v in lineage.values()):
            raise ModelFileError(f"{source}: model card field 'lineage' must map names to text")
        return cls(
            arch=_text(data, "arch", source),
            class_names=tuple(classes),
            input_shape=tuple(shape),
            normalization=Normalization(tuple(mean), tuple(std)),
            dataset=_text(data, "dataset", source, required=False),
            metrics={str(k): float(v) for k, v in metrics.items()},
            lineage=Lineage.from_dict(lineage),
        )


# Settings that do not change the model: where the data lies (the data checksum covers the data itself), how
# often the run checkpoints, how it waits and reads. Left out of the hash, so they never make one model look like two.
_NOT_THE_MODEL = ("data_root", "checkpoint_every", "dist_timeout", "max_memory_gb", "workers")


def class_names_problem(names: Sequence[str]) -> str | None:
    """Why these class names cannot name a model's scores (None: they can): an empty or blank name, or a
    name given twice (a prediction would not say which class it is)."""
    blank = [i for i, name in enumerate(names) if not name.strip()]
    if blank:
        return f"has an empty name (index {', '.join(map(str, blank[:5]))}); every class needs a name"
    twice = sorted(name for name, count in Counter(names).items() if count > 1)
    if twice:
        return f"names {', '.join(map(repr, twice[:5]))} more than once; every class needs a name of its own"
    return None


def config_hash(config_dict: Mapping[str, Any]) -> str:
    """SHA-256 of a config's plain data, keys sorted, without the settings that are not the model."""
    kept = {k: v for k, v in config_dict.items() if k not in _NOT_THE_MODEL}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


_MAX_SIDE = 8192  # an image model's input side; more is a corrupt or hostile card
_MAX_CLASSES = 100_000


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _text(data: Mapping[str, Any], key: str, source: str, *, required: bool = True) -> str:
    value = data.get(key, None if required else "")
    if not isinstance(value, str) or (required and not value):
        raise ModelFileError(f"{source}: model card field {key!r} must be {'non-empty ' if required else ''}text")
    return value


def _int_list(data: Mapping[str, Any], key: str, source: str, *, length: int, low: int, high: int) -> list[int]:
    value = data.get(key)
    if (
        not isinstance(value, (list, tuple))
        or len(value) != length
        or not all(isinstance(v, int) and not isinstance(v, bool) and low <= v <= high for v in value)
    ):
        raise ModelFileError(
            f"{source}: model card field {key!r} must be {length} whole numbers in {low}–{high} (got {value!r:.80})"
        )
    return list(value)


def _float_list(data: Mapping[str, Any], key: str, source: str, *, length: int) -> list[float]:
    value = data.get(key)
    if not isinstance(value, (list, tuple)) or len(value) != length or not all(_finite(v) for v in value):
        raise ModelFileError(
            f"{source}: model card normalization {key!r} must be {length} finite number(s), one "
            f"per channel (got {value!r:.80})"
        )
    return [float(v) for v in value]
