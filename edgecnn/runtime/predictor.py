"""The device-side :class:`Predictor`. Tier 0: numpy, onnxruntime and Pillow only. All it needs (classes,
normalization, input layout and dtype, baked preprocessing) comes from the model's own metadata; inputs are
validated before onnxruntime sees them (onnxruntime itself accepts NaN, batch 0 and Python lists)."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.card import ModelCard
from edgecnn.errors import ConfigError, InputError, ModelFileError, ProviderError, describe
from edgecnn.runtime.auto import AutoChoice, auto_files, choose_auto
from edgecnn.runtime.backends import BACKENDS, Engine, onnxruntime_engine, openvino_engine
from edgecnn.runtime.foreign import ForeignSpec, metadata_for
from edgecnn.runtime.framing import FIT_MODES, default_fit
from edgecnn.runtime.images import CHANNEL_ORDERS
from edgecnn.runtime.preprocess import MAX_BATCH, to_graph_input, to_model_pixels
from edgecnn.runtime.scores import ZEROS, Prediction, all_finite, checked_graph_input, softmax
from edgecnn.runtime.session import create_session, physical_cores
from edgecnn.runtime.threads import default_spinning, default_threads
from edgecnn.runtime.zoo import ZOO_PREFIX, is_zoo_spec, resolve_zoo

__all__ = ["Predictor", "Prediction", "softmax"]  # Prediction and softmax: scores.py's, re-exported


class Predictor:
    """An exported model, ready to classify images. Safe to share between threads.

    ``provider``: "auto" (CUDA when onnxruntime offers a working one, else the CPU), "cpu" or "cuda".
    ``fit``: how a photo is framed to the model's size (see :mod:`edgecnn.runtime.framing`); by default the
    recipe of the model's training data (MNIST: "digit", Fashion-MNIST: "object", else "stretch").
    ``channel_order``: "rgb", or "bgr" for OpenCV frames. ``threads`` and ``spinning`` (onnxruntime's idle
    workers busy-waiting: faster when the cores are yours alone, slower when other processes share them)
    left None follow the measured thread policy (``edgecnn.runtime.threads.THREAD_POLICY``). A model
    without edgecnn metadata needs ``classes``, ``mean``, ``std`` (and ``layout`` "NCHW" or "NHWC");
    ``output="probabilities"`` when its graph ends in a softmax. ``model_path`` may name a zoo model,
    ``"zoo:NAME[:fp32|int8]"`` (see :meth:`from_zoo`).
    ``backend``: "auto", the fastest correct configuration on this machine (docs/tuning.md; ``tune=False`` or
    ``EDGECNN_TUNE=0``: no tuning now), or "onnxruntime", or "openvino" (``device`` as OpenVINO names
    it, default "CPU"; ``precision`` "f32" unless "bf16"/"f16" is asked for). ``.backend``, ``.device`` and
    ``.precision`` say what really runs (OpenVINO's read back from the compiled model)."""

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        provider: str = "auto",
        threads: int | None = None,
        allow_fallback: bool = False,
        spinning: bool | None = None,
        fit: str | None = None,
        channel_order: str = "rgb",
        classes: Sequence[str] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        layout: str | None = None,
        output: str = "logits",
        backend: str = "auto",
        device: str | None = None,
        precision: str | None = None,
        tune: bool | None = None,
        zoo_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.path = resolve_zoo(model_path, zoo_dir) if is_zoo_spec(model_path) else Path(model_path)
        backend = _checked_backend(backend, provider)
        session, self.provider = create_session(
            self.path,
            "cpu" if backend == "openvino" else provider,
            threads=threads,
            allow_fallback=allow_fallback,
            spinning=spinning,
        )
        self.metadata = metadata_for(session, self.path, foreign := ForeignSpec(classes, mean, std, layout))
        self.auto: AutoChoice | None = None  # backend "auto": the decision in force and where it came from
        if backend == "auto" and device is None and precision is None:
            session, backend, precision, threads = self._follow_auto(
                session, (model_path, zoo_dir), threads, spinning, tune, foreign
            )
        self._bind_options(fit, channel_order, output)
        # OpenVINO's engine replaces the onnxruntime session, which has done its job: validating the file
        self._engine = self._start_engine(session, backend, device, threads, precision)
        self._bind_graph()

    def _bind_options(self, fit: str | None, channel_order: str, output: str) -> None:
        self.fit = _checked_choice("fit", fit or default_fit(self.card.dataset), FIT_MODES)
        self.channel_order = _checked_choice("channel_order", channel_order, CHANNEL_ORDERS)
        self._probabilities = _checked_choice("output", output, ("logits", "probabilities")) == "probabilities"

    def _follow_auto(
        self,
        session: Any,
        asked: tuple[Any, Any],
        threads: int | None,
        spinning: bool | None,
        tune: bool | None,
        foreign: ForeignSpec,
    ) -> tuple[Any, str, str | None, int | None]:
        """backend "auto": the decision in force here (runtime/auto.py; threads and spinning named by the caller
        win), and the session re-opened for its file, threads and spinning where they differ from the open one."""
        primary = str(self.metadata.quantization.get("mode", "none"))
        files = auto_files(*asked, path=self.path, primary=primary)
        choice = self.auto = choose_auto(files, primary, self.metadata, self.provider, tune_now=tune, threads=threads)
        opened = _effective(threads, spinning)
        threads, spinning = threads or choice.threads, choice.spinning if spinning is None else spinning
        if choice.path != self.path or (choice.backend == "onnxruntime" and _effective(threads, spinning) != opened):
            self.path = choice.path
            session, self.provider = create_session(self.path, self.provider, threads=threads, spinning=spinning)
            self.metadata = metadata_for(session, self.path, foreign)
        return session, choice.backend, choice.hint, threads

    def _start_engine(
        self, session: Any, backend: str, device: str | None, threads: int | None, precision: str | None
    ) -> Engine:
        """The onnxruntime session that validated the file, or the file compiled by OpenVINO; under backend "auto",
        saying where the decision came from."""
        if backend == "openvino":
            engine = openvino_engine(self.path, device=device or "CPU", threads=threads, precision=precision)
        elif device is not None or precision is not None:
            raise ConfigError(
                "device= and precision= are OpenVINO's: onnxruntime runs the file's own precision on provider="
            )
        else:
            engine = onnxruntime_engine(session, self.provider, self.metadata.quantization.get("mode"))
        return engine if self.auto is None else dataclasses.replace(engine, origin=self.auto.origin)

    def _bind_graph(self) -> None:
        """What logits() needs at hand; metadata_for has already held the metadata to the graph."""
        spec = self.metadata.input
        self.classes = self.card.class_names
        self._dtype = np.uint8 if spec.baked else np.float32
        self._input_dtype, self._float_input = np.dtype(self._dtype), not spec.baked
        self._shape, self._num_classes = spec.graph_shape, len(self.classes)
        self._run, self._errors = self._engine.run, self._engine.errors
        # MNIST-style data (dark backgrounds: a low mean pixel) is what light-background inversion is for
        self.inverts_light_backgrounds = spec.shape[0] == 1 and self.card.normalization.mean[0] < 0.5

    @classmethod
    def from_zoo(
        cls, name: str, variant: str | None = None, *, zoo_dir: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> Predictor:
        """The zoo's model NAME (``edgecnn zoo`` lists them) as ``variant`` "fp32" or "int8" (default: the net's
        own), once its size and SHA-256 match the zoo's index; ``kwargs`` as for the constructor."""
        spec = (name if is_zoo_spec(name) else ZOO_PREFIX + name) + (f":{variant}" if variant else "")
        return cls(spec, zoo_dir=zoo_dir, **kwargs)

    @property
    def card(self) -> ModelCard:
        """The model card the file carries (arch, classes, input, normalization, data, metrics, lineage)."""
        return self.metadata.card

    @property
    def session(self) -> Any:
        """What runs the model (read-only, for timing and inspection): the ``onnxruntime.InferenceSession``,
        or with backend "openvino" the ``openvino.CompiledModel``."""
        return self._engine.handle

    @property
    def engine(self) -> Engine:
        """The loaded model and what runs it (backend, device, precision, ``run(x) -> scores``)."""
        return self._engine

    @property
    def backend(self) -> str:
        return self._engine.backend

    @property
    def device(self) -> str:
        return self._engine.device

    @property
    def precision(self) -> str:
        return self._engine.precision

    def __repr__(self) -> str:
        return (
            f"Predictor({str(self.path)!r}, arch={self.card.arch!r}, backend={self.backend!r}, "
            f"device={self.device!r}, precision={self.precision!r})"
        )

    def logits(self, x: Any) -> np.ndarray:
        """The fast path: input already in the graph's form — float32 N×C×H×W normalised (N×H×W×C for a
        channels-last graph), or uint8 N×H×W(×C) for a model with baked preprocessing."""
        # The common case costs a few attribute checks and two finiteness passes (the goal: ≤ 5 % over a bare
        # session.run on a 50 µs model, BENCHMARKS.md "Tuning on the device"); anything unusual takes the slow
        # path that explains itself.
        if not (
            type(x) is np.ndarray
            and x.dtype == self._input_dtype  # a dtype object: comparing with np.float32, a type, costs ~0.3 µs
            and x.shape[1:] == self._shape
            and 0 < len(x) <= MAX_BATCH
            and x.flags.c_contiguous
        ):
            x = checked_graph_input(x, self._dtype, self._shape)
        elif (  # all_finite(x), inlined: a function call is 1 % of a 40 µs model
            self._float_input
            and not (x.size <= ZEROS.size and math.isfinite(np.vdot(x, ZEROS[: x.size])))
            and not np.isfinite(x).all()
        ):
            raise InputError("input contains NaN or infinite values")
        try:
            scores = self._run(x)
        except self._errors as exc:
            raise ProviderError(
                f"{self.backend} failed to run {self.path.name} on {self.device}: {describe(exc)}"
            ) from exc
        if scores.shape != (len(x), self._num_classes) or not all_finite(scores):
            self._refuse_scores(scores, len(x))
        return scores

    def _refuse_scores(self, scores: np.ndarray, batch: int) -> None:
        what = (
            f"scores of shape {scores.shape}"
            if scores.shape != (batch, len(self.classes))
            else "NaN or infinite scores"
        )
        raise ModelFileError(
            f"{self.path.name} returned {what} for a batch of {batch} (expected finite "
            f"{batch}×{len(self.classes)}): the model or its weights are broken",
            path=self.path,
        )

    def prepare(
        self, images: Any, *, invert: bool = True, fit: str | None = None, channel_order: str | None = None
    ) -> np.ndarray:
        """Images (PIL, uint8 or [0, 1] float arrays, one or a batch) → the graph's input."""
        pixels = to_model_pixels(
            images,
            self.card.input_shape,
            fit=fit or self.fit,
            invert=invert and self.inverts_light_backgrounds,
            dark_background=self.inverts_light_backgrounds,
            channel_order=channel_order or self.channel_order,
        )
        norm = self.card.normalization
        return to_graph_input(pixels, self.metadata.input, norm.mean, norm.std)

    def predict_proba(
        self, images: Any, *, invert: bool = True, fit: str | None = None, channel_order: str | None = None
    ) -> np.ndarray:
        scores = self.logits(self.prepare(images, invert=invert, fit=fit, channel_order=channel_order))
        return scores.astype(np.float32) if self._probabilities else softmax(scores)

    def predict(
        self,
        images: Any,
        top_k: int = 1,
        *,
        invert: bool = True,
        fit: str | None = None,
        channel_order: str | None = None,
    ) -> list[Prediction]:
        """One :class:`Prediction` per image, with the ``top_k`` most probable classes."""
        self.check_top_k(top_k)
        return self.rank(self.predict_proba(images, invert=invert, fit=fit, channel_order=channel_order), top_k)

    def rank(self, probabilities: np.ndarray, top_k: int = 1) -> list[Prediction]:
        """Probabilities (N × classes, from :meth:`predict_proba` or :func:`softmax` of :meth:`logits`) → one
        :class:`Prediction` per row, with the ``top_k`` most probable classes."""
        self.check_top_k(top_k)
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]
        return [
            Prediction(
                label=self.classes[row[0]],
                index=int(row[0]),
                probability=float(p[row[0]]),
                top_k=tuple((self.classes[i], float(p[i])) for i in row),
            )
            for p, row in zip(probabilities, order, strict=True)
        ]

    def check_top_k(self, top_k: Any) -> None:
        if not isinstance(top_k, (int, np.integer)) or isinstance(top_k, bool) or not 1 <= top_k <= len(self.classes):
            raise InputError(f"top_k must be between 1 and {len(self.classes)} (got {top_k})")


def _effective(threads: int | None, spinning: bool | None) -> tuple[int, bool]:
    """The threads and spinning an onnxruntime session really gets for these arguments (the policy's for None)."""
    spin = default_spinning() if spinning is None else spinning
    return threads or default_threads("onnxruntime") or physical_cores(), spin


def _checked_backend(backend: str, provider: str) -> str:
    backend = _checked_choice("backend", backend, BACKENDS)
    if backend == "openvino" and provider == "cuda":
        raise ConfigError("provider= is onnxruntime's; with backend='openvino' name OpenVINO's device= instead")
    return backend


def _checked_choice(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)} (got {value!r})")
    return value
