"""The device-side runtime: :class:`Predictor` over onnxruntime. Tier 0: numpy, onnxruntime and Pillow
only, never torch.

Everything the Predictor needs (classes, normalization, input layout and dtype, baked preprocessing)
comes from the model's own metadata. Inputs are validated before onnxruntime sees them: onnxruntime
itself accepts NaN, batch 0 and Python lists. :func:`open_session` is the one place a model file
becomes an ``InferenceSession``; onnxruntime's exceptions share no base class (a corrupt file can even
raise ``UnicodeDecodeError``), so every way a load fails becomes :class:`ModelFileError` there.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_errors

from edgecnn.errors import InputError, ModelFileError, ProviderError
from edgecnn.metadata import ModelMetadata, decode
from edgecnn.preprocess import MAX_BATCH, invert_light_backgrounds, to_graph_input, to_model_pixels

__all__ = ["Predictor", "Prediction", "ProviderWarning", "PROVIDERS", "ORT_ERRORS", "open_session",
           "read_metadata"]

PROVIDERS = ("auto", "cpu", "cuda")
_CUDA, _CPU = "CUDAExecutionProvider", "CPUExecutionProvider"

# Every exception type onnxruntime raises while loading or running a model.
ORT_ERRORS: tuple[type[BaseException], ...] = tuple(
    getattr(_ort_errors, name) for name in ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf",
                                            "NoSuchFile", "NoModel", "NotImplemented", "RuntimeException",
                                            "EPFail", "EngineError", "NotFound")
    if hasattr(_ort_errors, name)
) + (RuntimeError, ValueError, UnicodeDecodeError)


def open_session(path: str | os.PathLike[str], *, providers: tuple[str, ...] = ("CPUExecutionProvider",),
                 threads: int | None = None, spinning: bool = True) -> ort.InferenceSession:
    """A session with full graph optimisation; a missing or unloadable file is a ModelFileError.

    ``spinning=False`` stops idle worker threads from busy-waiting: needed when several sessions are
    timed side by side on few cores, where one session's spinning threads steal the next one's CPU."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"no model file at {path}")
    if path.stat().st_size == 0:
        raise ModelFileError(f"{path} is empty, not an ONNX model")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: onnxruntime's warnings are not our users' concern
    if threads:
        options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    try:
        # onnxruntime prints its "EP Error … Falling back" banner on stdout; stdout belongs to our callers
        # and warns on its own when a provider is missing: the Predictor checks and says it in our words
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module="onnxruntime")
            return ort.InferenceSession(str(path), sess_options=options, providers=list(providers))
    except ORT_ERRORS as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path} is not a loadable ONNX model ({reason[:200]})") from None


def read_metadata(session: ort.InferenceSession, *, source: str = "model") -> ModelMetadata:
    return decode(dict(session.get_modelmeta().custom_metadata_map), source=source)


class ProviderWarning(UserWarning):
    """The requested execution provider was not available and ``allow_fallback`` let the CPU run."""


@dataclass(frozen=True)
class Prediction:
    label: str
    index: int
    probability: float
    top_k: tuple[tuple[str, float], ...]  # (label, probability), most probable first

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "index": self.index, "probability": self.probability,
                "top_k": [{"label": label, "probability": p} for label, p in self.top_k]}


class Predictor:
    """An exported edgecnn model, ready to classify images. Safe to share between threads."""

    def __init__(self, model_path: str | os.PathLike[str], *, provider: str = "auto", threads: int | None = None,
                 allow_fallback: bool = False) -> None:
        if provider not in PROVIDERS:
            raise ProviderError(f"provider must be one of {', '.join(PROVIDERS)} (got {provider!r})")
        self.path = Path(model_path)
        self._session, self.provider = _create_session(self.path, provider, threads, allow_fallback)
        self.metadata = read_metadata(self._session, source=str(self.path))
        spec = self.metadata.input
        graph_input = self._session.get_inputs()[0]
        if graph_input.name != spec.name:
            raise ModelFileError(f"{self.path}: its metadata names input {spec.name!r}, the graph {graph_input.name!r}")
        self.classes = self.metadata.class_names
        self._dtype = np.uint8 if spec.baked else np.float32
        self._shape = spec.graph_shape
        self._input_name = spec.name
        self._outputs = [self._session.get_outputs()[0].name]
        # MNIST-style data (dark backgrounds: a low mean pixel) is what light-background inversion is for
        self._dark_background = spec.shape[0] == 1 and self.metadata.mean[0] < 0.5

    def __repr__(self) -> str:
        return f"Predictor({str(self.path)!r}, arch={self.metadata.arch!r}, provider={self.provider!r})"

    def logits(self, x: Any) -> np.ndarray:
        """The fast path: input already in the graph's form — float32 N×C×H×W normalised, or uint8
        N×H×W(×C) for a model with baked preprocessing."""
        # The common case costs a few attribute checks and one finiteness pass (the goal is ≤ 5 % over a
        # bare session.run on a 100 µs model); anything unusual takes the slow path that explains itself.
        if not (type(x) is np.ndarray and x.dtype == self._dtype and x.shape[1:] == self._shape
                and 0 < x.shape[0] <= MAX_BATCH and x.flags.c_contiguous):
            x = self._checked_graph_input(x)
        elif self._dtype is np.float32 and not np.isfinite(x).all():
            raise InputError("input contains NaN or infinite values")
        try:
            return self._session.run(self._outputs, {self._input_name: x})[0]
        except ORT_ERRORS as exc:
            raise ProviderError(f"onnxruntime failed to run {self.path.name} on {self.provider}: "
                                f"{str(exc).strip().splitlines()[0][:200]}") from None

    def prepare(self, images: Any, *, invert: bool = True) -> np.ndarray:
        """Images (PIL, uint8 or [0, 1] float arrays, one or a batch) → the graph's input."""
        pixels = to_model_pixels(images, self.metadata.input.shape)
        if invert and self._dark_background:
            pixels = invert_light_backgrounds(pixels)
        return to_graph_input(pixels, self.metadata.input, self.metadata.mean, self.metadata.std)

    def predict_proba(self, images: Any, *, invert: bool = True) -> np.ndarray:
        return _softmax(self.logits(self.prepare(images, invert=invert)))

    def predict(self, images: Any, top_k: int = 1, *, invert: bool = True) -> list[Prediction]:
        """One :class:`Prediction` per image, with the ``top_k`` most probable classes."""
        if not 1 <= top_k <= len(self.classes):
            raise InputError(f"top_k must be between 1 and {len(self.classes)} (got {top_k})")
        probabilities = self.predict_proba(images, invert=invert)
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]
        return [Prediction(label=self.classes[row[0]], index=int(row[0]), probability=float(p[row[0]]),
                           top_k=tuple((self.classes[i], float(p[i])) for i in row))
                for p, row in zip(probabilities, order)]

    def _checked_graph_input(self, x: Any) -> np.ndarray:
        if not isinstance(x, np.ndarray):
            try:
                x = np.asarray(x, dtype=self._dtype)
            except (ValueError, TypeError) as exc:
                raise InputError(f"cannot read the input as a {np.dtype(self._dtype).name} array: {exc}") from None
        if x.dtype != self._dtype:
            raise InputError(f"logits() takes {np.dtype(self._dtype).name} input for this model; got {x.dtype} "
                             "(use predict() for raw images)")
        expected = ("N", *self._shape)
        if x.ndim != len(expected) or tuple(x.shape[1:]) != self._shape:
            raise InputError(f"expected input of shape {'×'.join(map(str, expected))}; got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise InputError("got an empty batch: pass at least one image")
        if x.shape[0] > MAX_BATCH:
            raise InputError(f"batch of {x.shape[0]} exceeds the limit of {MAX_BATCH}")
        if x.dtype == np.float32 and not np.isfinite(x).all():
            raise InputError("input contains NaN or infinite values")
        return np.ascontiguousarray(x)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _create_session(path: Path, provider: str, threads: int | None,
                    allow_fallback: bool) -> tuple[ort.InferenceSession, str]:
    """Pick providers, create the session, then check which provider onnxruntime really used: asked
    for CUDA it may quietly hand back a CPU session."""
    offered = _CUDA in ort.get_available_providers()
    wants_cuda = provider == "cuda" or (provider == "auto" and offered)
    if provider == "cuda" and not offered:
        _refuse_or_warn(allow_fallback, f"provider 'cuda' asked for, but this onnxruntime "
                        f"({ort.__version__}) offers only {', '.join(ort.get_available_providers())}; install "
                        "onnxruntime-gpu (pip install edgecnn[gpu]) or use provider 'cpu' or 'auto'")
        wants_cuda = False
    session = open_session(path, providers=(_CUDA, _CPU) if wants_cuda else (_CPU,), threads=threads)
    used = "cuda" if session.get_providers()[0] == _CUDA else "cpu"
    if provider == "cuda" and wants_cuda and used != "cuda":
        _refuse_or_warn(allow_fallback, "provider 'cuda' asked for, but onnxruntime could not start it "
                        "(no usable GPU, or CUDA/cuDNN libraries missing) and made a CPU session")
    return session, used


def _refuse_or_warn(allow_fallback: bool, message: str) -> None:
    if not allow_fallback:
        raise ProviderError(message + "; pass allow_fallback=True to run on the CPU instead")
    warnings.warn(message + "; running on the CPU", ProviderWarning, stacklevel=4)
