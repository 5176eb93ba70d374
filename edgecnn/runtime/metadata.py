"""The ONNX metadata schema: the model card plus what is true of this one file, in ``metadata_props``.

Every key starts with ``edgecnn.``; values are strings (JSON where structured), so Netron shows them and
any ONNX tool can read them. A model carries everything the runtime needs: no side files.

=========================  ===================================================================
key                        value
=========================  ===================================================================
edgecnn.schema             schema version (this module's :data:`SCHEMA`)
edgecnn.version            edgecnn version that wrote the file
edgecnn.arch               card: registry name, or the class name of a foreign module
edgecnn.dataset            card: what the model was trained on
edgecnn.class_names        card: JSON list, index = class id
edgecnn.normalization      card: JSON mean, std per channel (applied after scaling pixels to [0, 1])
edgecnn.metrics            card: JSON, the trained model's test metrics (test_accuracy, …)
edgecnn.lineage            card: JSON config hash, data checksum, edgecnn version of the training
edgecnn.input              this file: JSON name, layout (NCHW | NHW | NHWC), dtype, shape (C, H, W), baked
edgecnn.quantization       this file: JSON mode and its settings (and auto's decision table)
edgecnn.parity             this file: JSON, the parity report it passed
edgecnn.targets            this file, optional: JSON, per target it was checked on (``edgecnn check --record``)
=========================  ===================================================================
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgecnn.card import ModelCard
from edgecnn.errors import ModelFileError, describe

__all__ = ["SCHEMA", "InputSpec", "ModelMetadata", "encode", "decode", "read_metadata", "metadata_props"]

SCHEMA = "2"
PREFIX = "edgecnn."
_CARD_TEXT = ("arch", "dataset")  # stored as plain strings; the card's other keys as JSON
_CARD_JSON = ("class_names", "normalization", "metrics", "lineage")


@dataclass(frozen=True)
class InputSpec:
    """What the graph's input takes. Float graphs take normalised NCHW; baked graphs raw uint8 pixels."""

    shape: tuple[int, int, int]  # (C, H, W) of one image
    baked: bool = False  # True: the graph casts, scales and normalises uint8 pixels itself
    name: str = "input"
    channels_last: bool = False  # a float graph that takes N×H×W×C (Keras-style exports)

    @property
    def layout(self) -> str:
        if not self.baked:
            return "NHWC" if self.channels_last else "NCHW"
        return "NHW" if self.shape[0] == 1 else "NHWC"

    @property
    def graph_shape(self) -> tuple[int, ...]:
        """One image as the graph takes it: (C, H, W), or (H, W, C) channels-last, or (H, W) when baked grey."""
        channels, height, width = self.shape
        if not self.baked and not self.channels_last:
            return self.shape
        return (height, width) if self.baked and channels == 1 else (height, width, channels)

    @property
    def dtype(self) -> str:
        return "uint8" if self.baked else "float32"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "layout": self.layout,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "baked": self.baked,
        }


@dataclass(frozen=True)
class ModelMetadata:
    """An exported file's metadata: the card of the model it holds, and what is true of this file."""

    card: ModelCard
    input: InputSpec
    quantization: Mapping[str, Any] = field(default_factory=lambda: {"mode": "none"})
    parity: Mapping[str, Any] = field(default_factory=dict)
    version: str = ""  # the edgecnn that wrote the file
    targets: Mapping[str, Any] = field(default_factory=dict)  # target name → what `edgecnn check` found there


def encode(meta: ModelMetadata) -> dict[str, str]:
    """Metadata → ``{key: string}`` for ``ModelProto.metadata_props``."""
    from edgecnn import __version__

    card = meta.card.to_dict()
    values = {
        "schema": SCHEMA,
        "version": meta.version or __version__,
        **{key: card[key] for key in _CARD_TEXT},
        **{key: json.dumps(card[key], sort_keys=True) for key in _CARD_JSON},
        "input": json.dumps(meta.input.to_dict()),
        "quantization": json.dumps(dict(meta.quantization), sort_keys=True),
        "parity": json.dumps(dict(meta.parity), sort_keys=True),
    }
    if meta.targets:
        values["targets"] = json.dumps(dict(meta.targets), sort_keys=True)
    return {PREFIX + k: v for k, v in values.items()}


def decode(props: Mapping[str, str], *, source: str = "model") -> ModelMetadata:
    """``{key: string}`` (e.g. ``InferenceSession.get_modelmeta().custom_metadata_map``) → metadata, every
    key checked: a missing key, broken JSON or a value of the wrong type is a ModelFileError naming it."""
    if PREFIX + "schema" not in props:
        raise ModelFileError(f"{source} has no edgecnn metadata; export it with `edgecnn export`", path=source)
    if props[PREFIX + "schema"] != SCHEMA:
        raise ModelFileError(
            f"{source} uses edgecnn metadata schema {props[PREFIX + 'schema']!r:.40}; this "
            f"edgecnn reads schema {SCHEMA!r}: export the model again",
            path=source,
        )
    values = {
        key: _value(props, key, source)
        for key in (*_CARD_TEXT, *_CARD_JSON, "input", "quantization", "parity", "version")
    }
    spec = values["input"]
    if not isinstance(spec, Mapping):
        raise ModelFileError(f"{source}: edgecnn.input must be a JSON object", path=source)
    card = ModelCard.from_dict(
        {**{k: values[k] for k in (*_CARD_TEXT, *_CARD_JSON)}, "input_shape": spec.get("shape")}, source=source
    )
    values["targets"] = _value(props, "targets", source) if PREFIX + "targets" in props else {}
    for key in ("quantization", "parity", "targets"):
        if not isinstance(values[key], Mapping):
            raise ModelFileError(f"{source}: edgecnn.{key} must be a JSON object", path=source)
    return ModelMetadata(
        card=card,
        input=_input_spec(spec, card, source),
        quantization=values["quantization"],
        parity=values["parity"],
        version=str(values["version"]),
        targets=values["targets"],
    )


def _value(props: Mapping[str, str], key: str, source: str) -> Any:
    if PREFIX + key not in props:
        raise ModelFileError(f"{source}: its edgecnn metadata lacks {PREFIX + key}", path=source)
    raw = props[PREFIX + key]
    if key in _CARD_TEXT or key == "version":
        return raw
    try:
        return json.loads(raw)
    except ValueError as exc:  # JSONDecodeError, and RecursionError's cousins for absurd nesting
        raise ModelFileError(f"{source}: {PREFIX + key} is not valid JSON ({describe(exc)})", path=source) from exc
    except RecursionError as exc:
        raise ModelFileError(f"{source}: {PREFIX + key} nests too deeply to be ours", path=source) from exc


def _input_spec(spec: Mapping[str, Any], card: ModelCard, source: str) -> InputSpec:
    name, baked, layout = spec.get("name"), spec.get("baked"), spec.get("layout")
    if not isinstance(name, str) or not name or not isinstance(baked, bool):
        raise ModelFileError(f"{source}: edgecnn.input needs a text 'name' and a true/false 'baked'", path=source)
    parsed = InputSpec(shape=card.input_shape, baked=baked, name=name, channels_last=not baked and layout == "NHWC")
    if layout != parsed.layout:
        raise ModelFileError(
            f"{source}: edgecnn.input layout {layout!r:.20} does not fit its shape and baked flag "
            f"(expected {parsed.layout})",
            path=source,
        )
    return parsed


def read_metadata(session: Any, *, source: str = "model") -> ModelMetadata:
    """The metadata of an ``onnxruntime.InferenceSession``'s model (bytes that are not UTF-8 included)."""
    return decode(metadata_props(session, source=source), source=source)


def metadata_props(session: Any, *, source: str = "model") -> dict[str, str]:
    """The model's ``metadata_props``; onnxruntime raises UnicodeDecodeError on bytes that are not UTF-8."""
    try:
        return dict(session.get_modelmeta().custom_metadata_map)
    except (UnicodeDecodeError, RuntimeError, ValueError) as exc:
        raise ModelFileError(f"{source}: its metadata is not valid UTF-8 text ({describe(exc)})", path=source) from exc
