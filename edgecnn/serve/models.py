"""A model as the server holds it: a :class:`~edgecnn.runtime.Predictor`, its dynamic batcher, and what the
Open Inference Protocol says about it (metadata, the input it takes, the outputs it gives).

``infer`` takes the tensor the ONNX graph takes — the same name, datatype and shape Triton would show for
the same file, so a client moves between the two unchanged — or, for any model, UINT8 pixels already at the
model's size (N×H×W for grey, N×H×W×C for colour), which the server normalises as the Predictor does. No
framing and no inversion: ``infer`` is the model's input, exactly. ``classify`` takes encoded images and
does everything ``Predictor.predict`` does (EXIF, alpha, framing, inversion), one image decoded at a time.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edgecnn.config import ServeConfig
from edgecnn.errors import ConfigError, ImageError, describe
from edgecnn.runtime.images import PIL_ERRORS, checked_image
from edgecnn.runtime.predictor import Predictor
from edgecnn.runtime.preprocess import to_graph_input
from edgecnn.runtime.scores import Prediction, softmax
from edgecnn.runtime.zoo import is_zoo_spec, parse_zoo_spec
from edgecnn.serve.batching import Batcher
from edgecnn.serve.calls import ModelCall, Watchdog
from edgecnn.serve.protocol import ProtocolError

__all__ = ["MODEL_VERSION", "OUTPUTS", "ServedModel", "load_models", "model_name"]

MODEL_VERSION = "1"  # one file per name: the protocol's version paths accept "1" only
OUTPUTS = ("logits", "probabilities")  # FP32 N × classes each; probabilities are the logits' softmax
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # fits a URL path segment and a Prometheus label


@dataclass(frozen=True)
class Upload:
    """One encoded image from a classify request: its name (for errors) and its bytes."""

    name: str
    data: bytes


class ServedModel:
    """``predictor`` behind a :class:`Batcher` built from ``config``, its calls stoppable by ``watchdog``;
    ``observe(images, seconds)`` hears of every model call."""

    def __init__(
        self,
        name: str,
        predictor: Predictor,
        config: ServeConfig,
        *,
        load_seconds: float,
        watchdog: Watchdog,
        observe: Callable[[int, float], None] | None = None,
    ) -> None:
        self.name, self.predictor, self.load_seconds = name, predictor, load_seconds
        self.max_images, self.max_pixels = config.max_images, config.max_pixels
        self.call = ModelCall(predictor, watchdog)
        self.batcher = Batcher(
            self.call,
            max_batch=config.max_batch,
            max_delay=config.max_delay_ms / 1000,
            max_queue=config.queue,
            observe=observe,
            limit=config.call_timeout,
            terminable=self.call.terminable,
        )
        spec = predictor.metadata.input
        channels, height, width = spec.shape
        self.input_name = spec.name
        self._graph = ("UINT8" if spec.baked else "FP32", spec.graph_shape)
        self._pixels = (height, width) if channels == 1 else (height, width, channels)
        self.max_elements = self.max_images * channels * height * width  # one infer input's values, at most

    def metadata(self) -> dict[str, Any]:
        """The protocol's model metadata; the model card and how it runs under ``parameters``."""
        card, predictor = self.predictor.card, self.predictor
        datatype, shape = self._graph
        classes = [-1, len(card.class_names)]
        return {
            "name": self.name,
            "versions": [MODEL_VERSION],
            "platform": "onnxruntime_onnx" if predictor.backend == "onnxruntime" else predictor.backend,
            "inputs": [{"name": self.input_name, "datatype": datatype, "shape": [-1, *shape]}],
            "outputs": [{"name": name, "datatype": "FP32", "shape": classes} for name in OUTPUTS],
            "parameters": {
                **card.to_dict(),
                "quantization": predictor.metadata.quantization.get("mode", "none"),
                "backend": predictor.backend,
                "device": predictor.device,
                "precision": predictor.precision,
                "chosen_by": predictor.engine.origin,
                "fit": predictor.fit,
                "pixel_input": {"datatype": "UINT8", "shape": [-1, *self._pixels]},
                "max_batch_size": self.batcher.max_batch,
                "max_images_per_request": self.max_images,
            },
        }

    def graph_input(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The request's one input → the graph's input, every size and value checked (a 400 or 413)."""
        if list(inputs) != [self.input_name]:
            given = ", ".join(map(repr, list(inputs)[:4]))
            raise ProtocolError(f"model {self.name} takes one input, {self.input_name!r} (got {given})")
        x = inputs[self.input_name]
        datatype, shape = self._graph
        if x.dtype == np.uint8:
            shape = self._pixels
        elif datatype != "FP32" or x.dtype != np.float32:
            raise ProtocolError(
                f"input {self.input_name!r} of model {self.name} takes {datatype}"
                + ("" if datatype == "UINT8" else " (or UINT8 pixels)")
            )
        wanted = "[" + ", ".join(map(str, (-1, *shape))) + "]"
        if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != tuple(shape):
            raise ProtocolError(
                f"input {self.input_name!r} must have shape {wanted} for {x.dtype.name}; got {list(x.shape)}"
            )
        self._check_count(len(x))
        if x.dtype == np.uint8:
            return self._from_pixels(x)
        if not np.isfinite(x).all():
            raise ProtocolError(f"input {self.input_name!r} contains NaN or infinite values")
        return np.ascontiguousarray(x)

    def _from_pixels(self, x: np.ndarray) -> np.ndarray:
        pixels = x.reshape(len(x), *self._pixels[:2], -1).transpose(0, 3, 1, 2)
        norm = self.predictor.card.normalization
        return to_graph_input(pixels, self.predictor.metadata.input, norm.mean, norm.std)

    def _check_count(self, count: int) -> None:
        if count == 0:
            raise ProtocolError("the request holds no images")
        if count > self.max_images:
            raise ProtocolError(f"{count} images in one request; this server takes at most {self.max_images}", 413)

    async def infer(self, x: np.ndarray, outputs: Sequence[str]) -> dict[str, np.ndarray]:
        """``outputs`` (of :data:`OUTPUTS`) for the graph input ``x``, computed in some batch."""
        unknown = [name for name in outputs if name not in OUTPUTS]
        if unknown:
            raise ProtocolError(f"model {self.name} has no output {unknown[0]!r}; it gives {', '.join(OUTPUTS)}")
        logits = await self.batcher.submit(x)
        return {name: logits if name == "logits" else softmax(logits) for name in outputs}

    def open_uploads(self, uploads: Sequence[Upload]) -> list[tuple[str, Image.Image]]:
        """Each upload opened — its header read, no pixel decoded yet — and counted against the limits."""
        self._check_count(len(uploads))
        opened = []
        for upload in uploads:
            try:
                opened.append((upload.name, Image.open(io.BytesIO(upload.data))))
            except (*PIL_ERRORS, Image.DecompressionBombError) as exc:
                raise ImageError(f"{upload.name}: not a readable image ({describe(exc)})") from exc
        return opened

    def prepare_uploads(
        self, opened: Sequence[tuple[str, Image.Image]], *, fit: str | None, invert: bool
    ) -> np.ndarray:
        """Opened uploads → the graph's input, decoded and framed one at a time (so one full-size photo at once)."""
        return np.concatenate(
            [
                self.predictor.prepare(
                    checked_image(image, max_pixels=self.max_pixels, path=name, first_frame=True),
                    fit=fit,
                    invert=invert,
                )
                for name, image in opened
            ]
        )

    async def classify(self, x: np.ndarray, top_k: int) -> list[Prediction]:
        self.predictor.check_top_k(top_k)  # before the queue, not after the model ran
        return self.predictor.rank(softmax(await self.batcher.submit(x)), top_k)


def model_name(spec: str) -> tuple[str, str]:
    """``NAME=MODEL`` → (NAME, MODEL); ``zoo:NAME[:VARIANT]`` → NAME; a file → its name without ``.onnx``."""
    head, sep, tail = spec.partition("=")
    if sep and _NAME.fullmatch(head):
        name, spec = head, tail
    elif is_zoo_spec(spec):
        name = parse_zoo_spec(spec)[0]
    else:
        name = Path(spec).name.removesuffix(".onnx")
    if not _NAME.fullmatch(name):
        raise ConfigError(f"{name!r} cannot name a served model: use NAME=MODEL with letters, digits, '_', '.', '-'")
    return name, spec


def load_models(
    specs: Sequence[str],
    config: ServeConfig,
    *,
    zoo_dir: str | None = None,
    observe: Callable[[str], Callable[[int, float], None]] | None = None,
) -> list[ServedModel]:
    """Each spec (a file, ``zoo:NAME``, or ``NAME=`` either) loaded and checked, before any port is opened."""
    named = [model_name(spec) for spec in specs]
    names = [name for name, _ in named]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"two models are named {repeated[0]}: name them apart with NAME=MODEL")
    served, watchdog = [], Watchdog(config.call_timeout)
    for name, spec in named:
        started = time.perf_counter()
        # backend "auto" decides here, before any port opens: the cache's entry, or a tuning now (runtime/auto.py)
        predictor = Predictor(
            spec, provider=config.provider, backend=config.backend, threads=config.threads, zoo_dir=zoo_dir
        )
        seconds = time.perf_counter() - started
        watched = observe and observe(name)
        served.append(ServedModel(name, predictor, config, load_seconds=seconds, watchdog=watchdog, observe=watched))
    return served
