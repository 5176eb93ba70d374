"""ModelCard: THE description of a trained model. Tier 0.

The checkpoint (``training/checkpoint.py``), the ONNX ``metadata_props`` (``runtime/metadata.py``) and the
zoo's ``models/*/card.md`` all serialize this one object, so what a model is never gets restated by hand.
(torchvision binds a trained artifact and its meta in one ``Weights`` object; timm has ``PretrainedCfg``.)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgecnn.errors import ModelFileError

__all__ = ["Normalization", "Lineage", "ModelCard", "config_hash"]


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std applied after scaling pixels to [0, 1]."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Normalization:
        return cls(tuple(float(v) for v in data["mean"]), tuple(float(v) for v in data["std"]))


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
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "model") -> ModelCard:
        """The inverse of :meth:`to_dict`; anything malformed is a :class:`ModelFileError` on ``source``."""
        try:
            shape = tuple(int(v) for v in data["input_shape"])
            if len(shape) != 3:
                raise ValueError(f"input_shape must be (C, H, W), got {shape}")
            return cls(
                arch=str(data["arch"]),
                class_names=tuple(str(c) for c in data["class_names"]),
                input_shape=shape,  # type: ignore[arg-type]
                normalization=Normalization.from_dict(data["normalization"]),
                dataset=str(data.get("dataset", "")),
                metrics={str(k): float(v) for k, v in dict(data.get("metrics", {})).items()},
                lineage=Lineage.from_dict(data.get("lineage", {})),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelFileError(f"{source} has a malformed model card ({type(exc).__name__}: {exc})") from exc

    def to_markdown(self) -> str:
        """The card as a short Markdown page (``models/NAME/card.md``)."""
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in self.metrics.items()) or "none recorded"
        return "\n".join(
            [
                f"# {self.arch} on {self.dataset}",
                "",
                f"- classes ({len(self.class_names)}): {', '.join(self.class_names)}",
                f"- input: {'×'.join(map(str, self.input_shape))} (C×H×W), normalised with mean "
                f"{list(self.normalization.mean)}, std {list(self.normalization.std)}",
                f"- metrics: {metrics}",
                f"- lineage: {self.lineage.summary()}",
                "",
            ]
        )


def config_hash(config_dict: Mapping[str, Any]) -> str:
    """SHA-256 of a config's plain data, keys sorted; ``data_root`` is left out (where the data lies is
    not what the model is: the data checksum covers the data itself)."""
    kept = {k: v for k, v in config_dict.items() if k != "data_root"}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()
