"""What ``edgecnn bench`` times: an ONNX file through the Predictor's session, or torch eager from a
checkpoint. Each subject runs like a session (``run(None, feed)``) and knows what it is."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.config import BenchConfig
from edgecnn.errors import ConfigError, ModelFileError
from edgecnn.files import checkpoint_path

__all__ = ["ModelInfo", "Subject", "onnx_subject", "torch_subject"]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    kind: str  # "onnxruntime" or "torch"
    file_bytes: int
    provider: str  # the provider that really ran
    threads: int
    quantization: str
    session_create_ms: float  # what a device app pays: the Predictor (or the checkpoint + net) as it comes
    first_inference_ms: float
    cold_start_ms: float | None = None  # median wall time of fresh processes: import + load + first run
    peak_rss_mib: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Subject:
    name: str
    run: Callable[[Any, Any], Any]
    feed: Callable[[int], dict[str, Any]]
    info: ModelInfo
    cold: tuple[str, list[str]]  # a script and its arguments for a fresh process
    close: Callable[[], None] = lambda: None


_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(uint8)": np.uint8,
    "tensor(float16)": np.float16,
    "tensor(int8)": np.int8,
    "tensor(double)": np.float64,
}

_ONNX_COLD = """
import sys, numpy as np
from edgecnn.runtime import Predictor
predictor = Predictor(sys.argv[1], provider=sys.argv[2])
shape = [1] + [int(d) for d in sys.argv[3].split(",")]
predictor.logits(np.zeros(shape, dtype=sys.argv[4]))
"""
_FOREIGN_COLD = """
import sys, numpy as np
from edgecnn.runtime.session import create_session
session, _ = create_session(sys.argv[1], sys.argv[2])
shape = [1] + [int(d) for d in sys.argv[3].split(",")]
session.run(None, {session.get_inputs()[0].name: np.zeros(shape, dtype=sys.argv[4])})
"""


def onnx_subject(path: Path, config: BenchConfig, *, spinning: bool) -> Subject:
    """Any ONNX model file, opened with the Predictor's provider rules and timed through its session. An
    edgecnn model is opened as a device app opens it (the Predictor); any other by its graph's input."""
    from edgecnn.runtime.session import physical_cores

    started = time.perf_counter()
    session, provider, shape, mode, cold = _open(path, config, spinning)
    created = time.perf_counter() - started
    graph_input = session.get_inputs()[0]
    dtype = _DTYPES.get(graph_input.type)
    if dtype is None:
        raise ModelFileError(f"{path}: cannot bench an input of type {graph_input.type}", path=path)
    feed = _random_feed(graph_input.name, dtype, shape)
    first_started = time.perf_counter()
    session.run(None, feed(1))
    first = time.perf_counter() - first_started
    info = ModelInfo(
        name=str(path),
        kind="onnxruntime",
        file_bytes=path.stat().st_size,
        provider=provider,
        threads=config.threads or physical_cores(),
        quantization=mode,
        session_create_ms=created * 1e3,
        first_inference_ms=first * 1e3,
    )
    args = [str(path), provider, ",".join(map(str, shape)), np.dtype(dtype).name]
    return Subject(str(path), session.run, feed, info, (cold, args))


def _open(path: Path, config: BenchConfig, spinning: bool) -> tuple[Any, str, tuple[int, ...], str, str]:
    from edgecnn.runtime import Predictor
    from edgecnn.runtime.graphinfo import read_graph_info
    from edgecnn.runtime.metadata import PREFIX
    from edgecnn.runtime.session import create_session

    options = {"threads": config.threads, "allow_fallback": config.allow_fallback, "spinning": spinning}
    if PREFIX + "schema" in read_graph_info(path).metadata:
        predictor = Predictor(path, provider=config.provider, **options)  # what a device app opens
        mode = str(predictor.metadata.quantization.get("mode"))
        return predictor.session, predictor.provider, predictor.metadata.input.graph_shape, mode, _ONNX_COLD
    session, provider = create_session(path, config.provider, **options)
    shape = _foreign_shape(path, session.get_inputs()[0].shape, config.shape)
    return session, provider, shape, "foreign", _FOREIGN_COLD


def _foreign_shape(path: Path, dims: list[Any], given: tuple[int, ...] | None) -> tuple[int, ...]:
    """The graph's input dims after the batch axis: fixed ones as they are, symbolic ones from --shape."""
    rest = list(dims[1:])
    if given is None:
        if all(isinstance(d, int) and d > 0 for d in rest):
            return tuple(rest)
        raise ConfigError(
            f"{path}: its input is {dims}; give the sizes after the batch axis with --shape, e.g. "
            f"--shape {','.join(str(d) if isinstance(d, int) else 'N' for d in rest)}"
        )
    clash = [(d, g) for d, g in zip(rest, given, strict=False) if isinstance(d, int) and d > 0 and d != g]
    if len(given) != len(rest) or clash:
        raise ConfigError(f"{path}: --shape {','.join(map(str, given))} does not fit its input {dims}")
    return tuple(given)


def _random_feed(name: str, dtype: Any, shape: tuple[int, ...]) -> Callable[[int], dict[str, Any]]:
    rng = np.random.default_rng(0)

    def feed(batch: int) -> dict[str, Any]:
        if np.issubdtype(dtype, np.integer):
            return {name: rng.integers(0, 256, (batch, *shape)).astype(dtype)}
        return {name: rng.standard_normal((batch, *shape)).astype(dtype)}

    return feed


_TORCH_COLD = """
import sys, torch
from edgecnn.training.checkpoint import load_checkpoint
checkpoint = load_checkpoint(sys.argv[1])
with torch.inference_mode():
    checkpoint.build_model()(torch.zeros(1, *checkpoint.card.input_shape))
"""


def torch_subject(checkpoint: str, config: BenchConfig) -> Subject:
    """torch eager on the CPU, from an edgecnn checkpoint (torch is imported only here). With
    ``config.threads`` torch's thread count is set for the measurement and restored by ``close``."""
    import torch

    from edgecnn.training.checkpoint import load_checkpoint

    before = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    started = time.perf_counter()
    saved = load_checkpoint(checkpoint)
    model = saved.build_model()
    created = time.perf_counter() - started
    rng = np.random.default_rng(0)

    def feed(batch: int) -> dict[str, Any]:
        return {"input": rng.standard_normal((batch, *saved.card.input_shape)).astype(np.float32)}

    def run(_names: Any, inputs: dict[str, Any]) -> Any:
        with torch.inference_mode():
            return model(torch.from_numpy(inputs["input"]))

    first_started = time.perf_counter()
    run(None, feed(1))
    info = ModelInfo(
        name=f"torch eager ({checkpoint})",
        kind="torch",
        file_bytes=checkpoint_path(checkpoint).stat().st_size,
        provider="cpu",
        threads=torch.get_num_threads(),
        quantization="none",
        session_create_ms=created * 1e3,
        first_inference_ms=(time.perf_counter() - first_started) * 1e3,
    )
    return Subject(
        info.name, run, feed, info, (_TORCH_COLD, [str(checkpoint)]), close=lambda: torch.set_num_threads(before)
    )
