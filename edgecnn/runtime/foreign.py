"""Models without edgecnn metadata: the caller says what the metadata would have said.

A classifier exported by ``torch.onnx.export``, Keras or another tool carries no class names and no
normalization. ``Predictor(path, classes=..., mean=..., std=..., layout=...)`` supplies them; without them
the model is refused with a message listing those arguments (a guess would be a silent wrong answer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.card import Lineage, ModelCard, Normalization, class_names_problem
from edgecnn.config import INPUT_LAYOUTS
from edgecnn.errors import ConfigError, ModelFileError
from edgecnn.runtime.guards import MAX_BATCH_BYTES, MAX_PIXELS, MAX_SIDE, size_problem
from edgecnn.runtime.metadata import PREFIX, InputSpec, ModelMetadata, metadata_props, read_metadata

__all__ = ["LAYOUTS", "ForeignSpec", "metadata_for", "missing_description", "check_against_graph"]

LAYOUTS = INPUT_LAYOUTS
_ARGUMENTS = (
    "classes=[...], mean=[...], std=[...] (and layout='NCHW' or 'NHWC'; on the command line "
    "--classes, --mean, --std, --layout)"
)


@dataclass(frozen=True)
class ForeignSpec:
    classes: Sequence[str] | None = None
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    layout: str | None = None

    @property
    def given(self) -> bool:
        return any(v is not None for v in (self.classes, self.mean, self.std, self.layout))


def metadata_for(session: Any, path: Path, foreign: ForeignSpec) -> ModelMetadata:
    """The file's own edgecnn metadata, or the caller's description of a model that has none."""
    if PREFIX + "schema" in metadata_props(session, source=str(path)):
        if foreign.given:
            raise ConfigError(
                f"{path} carries its own edgecnn metadata; classes=, mean=, std= and layout= are for models without it"
            )
        return check_against_graph(session, path, read_metadata(session, source=str(path)))
    missing = missing_description(foreign)
    if missing:
        raise ModelFileError(
            f"{path} has no edgecnn metadata and nothing gives its {', '.join(missing)}: pass {_ARGUMENTS} to "
            "describe its input, or export it with `edgecnn export`",
            path=path,
        )
    return check_against_graph(session, path, _describe(session, path, foreign))


def missing_description(foreign: ForeignSpec) -> list[str]:
    """What a model without edgecnn metadata still needs described, all at once (layout defaults to NCHW)."""
    return [name for name in ("classes", "mean", "std") if getattr(foreign, name) is None]


def _describe(session: Any, path: Path, foreign: ForeignSpec) -> ModelMetadata:
    graph_input = session.get_inputs()[0]
    layout = foreign.layout or "NCHW"
    if layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {', '.join(LAYOUTS)} (got {layout!r})")
    if graph_input.type != "tensor(float)" or len(graph_input.shape) != 4:
        raise ModelFileError(
            f"{path}: its input {graph_input.name!r} is {graph_input.type} "
            f"{graph_input.shape}; a model without edgecnn metadata must take float32 "
            "N×C×H×W or N×H×W×C images",
            path=path,
        )
    dims = graph_input.shape[1:] if layout == "NCHW" else [graph_input.shape[3], *graph_input.shape[1:3]]
    if not all(isinstance(d, int) and d > 0 for d in dims):
        raise ModelFileError(f"{path}: its input shape {graph_input.shape} has no fixed {layout[1:]} size", path=path)
    channels = dims[0]
    if not len(foreign.mean) == len(foreign.std) == channels:
        raise ConfigError(
            f"{path} takes {channels} channel(s): give mean and std with {channels} value(s) each "
            f"(got {len(foreign.mean)} and {len(foreign.std)}; is layout={layout!r} right?)"
        )
    _check_classes(session, path, foreign.classes)
    card = ModelCard(
        arch=path.stem,
        class_names=tuple(foreign.classes),
        input_shape=(dims[0], dims[1], dims[2]),
        normalization=Normalization(tuple(foreign.mean), tuple(foreign.std)),
        lineage=Lineage(),
    )
    spec = InputSpec(shape=card.input_shape, name=graph_input.name, channels_last=layout == "NHWC")
    return ModelMetadata(card=card, input=spec, quantization={"mode": "unknown"}, parity={})


def _check_classes(session: Any, path: Path, classes: Sequence[str]) -> None:
    output = session.get_outputs()[0]
    width = output.shape[-1] if output.shape else None
    if len(classes) < 2:
        raise ConfigError(f"classes needs at least 2 names (got {len(classes)})")
    problem = class_names_problem(classes)
    if problem:
        raise ConfigError(f"classes {problem}")
    if isinstance(width, int) and width != len(classes):
        raise ConfigError(f"{path} outputs {width} scores per image but {len(classes)} class names were given")


_GRAPH_TYPES = {False: "tensor(float)", True: "tensor(uint8)"}  # by InputSpec.baked


def check_against_graph(session: Any, path: Path, meta: ModelMetadata) -> ModelMetadata:
    """What the metadata says must be what the graph takes and gives: one image input of its name, dtype
    and shape, a first output of one score per class. A model that loads is a model that runs."""
    spec, inputs, outputs = meta.input, session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise ModelFileError(
            f"{path}: its graph takes {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
            "an image classifier takes one",
            path=path,
        )
    (graph_input,) = inputs
    expected = ["N", *spec.graph_shape]
    dims = list(graph_input.shape or [])
    if (
        graph_input.name != spec.name
        or graph_input.type != _GRAPH_TYPES[spec.baked]
        or len(dims) != len(expected)
        or any(isinstance(d, int) and d != e for d, e in zip(dims[1:], expected[1:], strict=True))
    ):
        raise ModelFileError(
            f"{path}: its metadata describes input {spec.name!r} {_GRAPH_TYPES[spec.baked]} "
            f"{expected}, the graph has {graph_input.name!r} {graph_input.type} {dims}",
            path=path,
        )
    _check_input_size(path, spec.shape)
    scores = outputs[0] if outputs else None
    width = scores.shape[-1] if scores is not None and scores.shape else None
    classes = len(meta.card.class_names)
    if (
        scores is None
        or scores.type != "tensor(float)"
        or len(scores.shape or []) != 2
        or (isinstance(width, int) and width != classes)
    ):
        raise ModelFileError(
            f"{path}: its metadata names {classes} classes, but the graph's first output is "
            f"{getattr(scores, 'type', 'missing')} {getattr(scores, 'shape', '')}",
            path=path,
        )
    return meta


def _check_input_size(path: Path, shape: tuple[int, int, int]) -> None:
    """The graph's image within the limits every image is held to, before anything of its size is allocated."""
    channels, height, width = shape
    if size_problem(width, height) or channels * height * width * 4 > MAX_BATCH_BYTES:
        raise ModelFileError(
            f"{path}: its input is {channels}×{height}×{width}, past the limits every image is held to "
            f"({MAX_PIXELS:,} pixels, {MAX_SIDE:,} a side): nothing of that size is fed to it",
            path=path,
        )
