"""The ONNX metadata schema: what export writes into ``metadata_props`` and the runtime reads back.

Every key starts with ``edgecnn.``; values are strings (JSON where structured), so Netron shows them and
any ONNX tool can read them. A model carries everything the runtime needs: no side files.

=========================  ===================================================================
key                        value
=========================  ===================================================================
edgecnn.schema             schema version (this module's :data:`SCHEMA`)
edgecnn.version            edgecnn version that exported the model
edgecnn.arch               registry name, or the class name of a foreign module
edgecnn.dataset            what the model was trained on
edgecnn.class_names        JSON list, index = class id
edgecnn.input              JSON: name, layout (NCHW | NHW | NHWC), dtype, shape (C, H, W), baked
edgecnn.normalization      JSON: mean, std per channel (applied after scaling pixels to [0, 1])
edgecnn.quantization       JSON: mode and its settings (and auto's decision table)
edgecnn.parity             JSON: the parity report the export passed
edgecnn.fp32_test_accuracy the torch model's test accuracy from training, or "" if unknown
=========================  ===================================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from edgecnn.errors import ModelFileError

__all__ = ["SCHEMA", "InputSpec", "ModelMetadata", "encode", "decode"]

SCHEMA = "1"
PREFIX = "edgecnn."


@dataclass(frozen=True)
class InputSpec:
    """What the graph's input takes. Float graphs take normalised NCHW; baked graphs raw uint8 pixels."""

    shape: tuple[int, int, int]  # (C, H, W) of one image
    baked: bool = False  # True: the graph casts, scales and normalises uint8 pixels itself
    name: str = "input"

    @property
    def layout(self) -> str:
        if not self.baked:
            return "NCHW"
        return "NHW" if self.shape[0] == 1 else "NHWC"

    @property
    def graph_shape(self) -> tuple[int, ...]:
        """One image as the graph takes it: (C, H, W), or (H, W) / (H, W, C) when baked."""
        channels, height, width = self.shape
        if not self.baked:
            return self.shape
        return (height, width) if channels == 1 else (height, width, channels)

    @property
    def dtype(self) -> str:
        return "uint8" if self.baked else "float32"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "layout": self.layout, "dtype": self.dtype, "shape": list(self.shape),
                "baked": self.baked}


@dataclass(frozen=True)
class ModelMetadata:
    arch: str
    class_names: tuple[str, ...]
    input: InputSpec
    mean: tuple[float, ...]
    std: tuple[float, ...]
    dataset: str = ""
    fp32_test_accuracy: float | None = None
    quantization: dict[str, Any] = field(default_factory=lambda: {"mode": "none"})
    parity: dict[str, Any] = field(default_factory=dict)
    version: str = ""


def encode(meta: ModelMetadata) -> dict[str, str]:
    """Metadata → ``{key: string}`` for ``ModelProto.metadata_props``."""
    from edgecnn import __version__

    values = {
        "schema": SCHEMA,
        "version": meta.version or __version__,
        "arch": meta.arch,
        "dataset": meta.dataset,
        "class_names": json.dumps(list(meta.class_names)),
        "input": json.dumps(meta.input.to_dict()),
        "normalization": json.dumps({"mean": list(meta.mean), "std": list(meta.std)}),
        "quantization": json.dumps(meta.quantization, sort_keys=True),
        "parity": json.dumps(meta.parity, sort_keys=True),
        "fp32_test_accuracy": "" if meta.fp32_test_accuracy is None else repr(meta.fp32_test_accuracy),
    }
    return {PREFIX + k: v for k, v in values.items()}


def decode(props: dict[str, str], *, source: str = "model") -> ModelMetadata:
    """``{key: string}`` (e.g. ``InferenceSession.get_modelmeta().custom_metadata_map``) → metadata."""
    if PREFIX + "schema" not in props:
        raise ModelFileError(f"{source} has no edgecnn metadata; export it with `edgecnn export`")
    if props[PREFIX + "schema"] != SCHEMA:
        raise ModelFileError(f"{source} uses edgecnn metadata schema {props[PREFIX + 'schema']!r}; "
                             f"this edgecnn reads schema {SCHEMA!r}")
    try:
        get = lambda key: props[PREFIX + key]  # noqa: E731
        spec, norm = json.loads(get("input")), json.loads(get("normalization"))
        accuracy = get("fp32_test_accuracy")
        return ModelMetadata(
            arch=get("arch"), dataset=get("dataset"), version=get("version"),
            class_names=tuple(json.loads(get("class_names"))),
            input=InputSpec(shape=tuple(int(v) for v in spec["shape"]), baked=bool(spec["baked"]),
                            name=str(spec["name"])),
            mean=tuple(float(v) for v in norm["mean"]), std=tuple(float(v) for v in norm["std"]),
            quantization=json.loads(get("quantization")), parity=json.loads(get("parity")),
            fp32_test_accuracy=float(accuracy) if accuracy else None,
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelFileError(f"{source} has malformed edgecnn metadata ({type(exc).__name__}: {exc})") from None
