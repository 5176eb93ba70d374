"""What ``edgecnn bench`` times: an ONNX file through the engine a Predictor runs it on, or torch eager
from a checkpoint. Each subject runs as an engine does (``run(x) -> scores``: :data:`edgecnn.runtime.timing.Run`)
and knows what it is."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.config import BenchConfig
from edgecnn.errors import ConfigError, ModelFileError, ProviderError, describe
from edgecnn.files import checkpoint_path
from edgecnn.runtime.backends import Engine
from edgecnn.runtime.guards import MAX_BATCH_BYTES
from edgecnn.runtime.timing import Run

__all__ = ["ModelInfo", "Subject", "onnx_subject", "torch_subject"]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    kind: str  # "onnxruntime", "openvino" or "torch"
    file_bytes: int
    provider: str  # the provider that really ran
    threads: int
    quantization: str
    session_create_ms: float  # what a device app pays: the Predictor (or the checkpoint + net) as it comes
    first_inference_ms: float
    cold_start_ms: float | None = None  # median wall time of fresh processes: import + load + first run
    peak_rss_mib: float | None = None
    precision: str = "f32"  # what the compute runs in (OpenVINO: read back from its compiled model)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Subject:
    name: str
    run: Run
    feed: Callable[[int], np.ndarray]  # a batch of that many random inputs
    info: ModelInfo
    cold: tuple[str, list[str]]  # a script and its arguments for a fresh process
    close: Callable[[], None] = lambda: None
    errors: tuple[type[BaseException], ...] = ()  # what ``run`` raises when the model fails

    def checked_run(self, x: np.ndarray, when: str) -> Any:
        return checked_call(self.run, self.errors, self.name, x, when)


def checked_call(run: Run, errors: tuple[type[BaseException], ...], name: str, x: np.ndarray, when: str) -> Any:
    """``run(x)``, a failure of the model one ProviderError line naming it."""
    try:
        return run(x)
    except errors as exc:
        raise ProviderError(f"{name} failed to run {when}: {describe(exc)}") from exc


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
predictor = Predictor(sys.argv[1], provider=sys.argv[2], backend=sys.argv[5])
shape = [1] + [int(d) for d in sys.argv[3].split(",")]
predictor.logits(np.zeros(shape, dtype=sys.argv[4]))
"""
_FOREIGN_COLD = """
import sys, numpy as np
from edgecnn.runtime.backends import onnxruntime_engine, openvino_engine
from edgecnn.runtime.session import create_session
shape = [1] + [int(d) for d in sys.argv[3].split(",")]
if sys.argv[5] == "openvino":
    engine = openvino_engine(__import__("pathlib").Path(sys.argv[1]))
else:
    engine = onnxruntime_engine(*create_session(sys.argv[1], sys.argv[2]), None)
engine.run(np.zeros(shape, dtype=sys.argv[4]))
"""


@dataclass(frozen=True)
class _Opened:
    engine: Engine
    input_type: str  # onnxruntime's spelling, "tensor(float)"
    shape: tuple[int, ...]
    mode: str
    cold: str


def onnx_subject(
    path: Path,
    config: BenchConfig,
    *,
    spinning: bool,
    backend: str = "onnxruntime",
    threads: int | None = None,
    tag: bool = False,
    on_stop: Callable[[Callable[[], None]], None] = lambda _: None,
) -> Subject:
    """Any ONNX model file on ``backend`` with ``threads``, opened with the Predictor's rules and timed
    through its engine's own call (``Engine.run``). An edgecnn model is opened as a device app opens it
    (the Predictor); any other by its graph's input. ``tag``: name the backend and threads in the row's name."""
    from edgecnn.runtime.session import physical_cores
    from edgecnn.runtime.threads import default_threads

    started = time.perf_counter()
    opened = _open(path, config, spinning, backend, threads)
    created = time.perf_counter() - started
    dtype = feed_dtype(path, opened.input_type, opened.shape, config.batch_sizes)
    feed, engine = _random_feed(dtype, opened.shape), opened.engine
    name = f"{path} [{backend}, {threads or 'default'} thr]" if tag else str(path)
    on_stop(engine.stop)  # before the first call, which may be one that never ends
    first_started = time.perf_counter()
    checked_call(engine.run, engine.errors, name, feed(1), "on its first call (batch 1)")
    first = time.perf_counter() - first_started
    info = ModelInfo(
        name=name,
        kind=backend,
        file_bytes=path.stat().st_size,
        provider=opened.engine.device,
        threads=threads or default_threads(backend) or physical_cores(),
        quantization=opened.mode,
        session_create_ms=created * 1e3,
        first_inference_ms=first * 1e3,
        precision=opened.engine.precision,
    )
    args = [str(path), opened.engine.device, ",".join(map(str, opened.shape)), np.dtype(dtype).name, backend]
    return Subject(name, engine.run, feed, info, (opened.cold, args), errors=engine.errors)


def feed_dtype(path: Path, input_type: str, shape: tuple[int, ...], batch_sizes: tuple[int, ...]) -> Any:
    """The numpy dtype of the random input, whose largest batch must be within the limit every input is held to
    (checked before it is allocated)."""
    dtype = _DTYPES.get(input_type)
    if dtype is None:
        raise ModelFileError(f"{path}: cannot bench an input of type {input_type}", path=path)
    largest = max(batch_sizes)
    size = math.prod((largest, *shape)) * np.dtype(dtype).itemsize
    if size > MAX_BATCH_BYTES:
        raise ModelFileError(
            f"{path}: a batch of {largest} of its input {list(shape)} {np.dtype(dtype).name} would take "
            f"{size / 2**30:,.3g} GiB, over the {MAX_BATCH_BYTES >> 20:,} MiB every input is held to: "
            "bench smaller --batch-sizes" + (", or give a smaller --shape" if largest == 1 else ""),
            path=path,
        )
    return dtype


def _open(path: Path, config: BenchConfig, spinning: bool, backend: str, threads: int | None) -> _Opened:
    from edgecnn.runtime import Predictor
    from edgecnn.runtime.backends import onnxruntime_engine, openvino_engine
    from edgecnn.runtime.graphinfo import read_graph_info
    from edgecnn.runtime.metadata import PREFIX
    from edgecnn.runtime.session import create_session

    options = {"threads": threads, "allow_fallback": config.allow_fallback, "spinning": spinning}
    if PREFIX + "schema" in read_graph_info(path).metadata:
        predictor = Predictor(path, provider=config.provider, backend=backend, **options)  # as a device app does
        spec = predictor.metadata.input
        kind = "tensor(uint8)" if spec.baked else "tensor(float)"
        mode = str(predictor.metadata.quantization.get("mode"))
        return _Opened(predictor.engine, kind, spec.graph_shape, mode, _ONNX_COLD)
    session, provider = create_session(path, "cpu" if backend == "openvino" else config.provider, **options)
    inputs = session.get_inputs()
    if len(inputs) != 1:  # a second input is not an image: what to feed it is the model's secret, not ours to guess
        named = ", ".join(f"{i.name} {i.type} {i.shape}" for i in inputs)
        raise ModelFileError(
            f"{path}: its graph takes {len(inputs)} inputs ({named}); edgecnn bench feeds one input, "
            "as the Predictor runs a model: export it with its image as the only input",
            path=path,
        )
    graph_input = inputs[0]
    shape = _foreign_shape(path, graph_input.shape, config.shape)
    if backend == "openvino":
        engine = openvino_engine(path, threads=threads)
    else:  # the engine a Predictor given classes=, mean=, std= would run it on
        engine = onnxruntime_engine(session, provider, None)
    return _Opened(engine, graph_input.type, shape, "foreign", _FOREIGN_COLD)


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


def _random_feed(dtype: Any, shape: tuple[int, ...]) -> Callable[[int], np.ndarray]:
    rng = np.random.default_rng(0)

    def feed(batch: int) -> np.ndarray:
        if np.issubdtype(dtype, np.integer):
            return rng.integers(0, 256, (batch, *shape)).astype(dtype)
        return rng.standard_normal((batch, *shape)).astype(dtype)

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
    ``config.threads`` (one count) torch's thread count is set for the measurement and restored by ``close``."""
    import torch

    from edgecnn.training.checkpoint import load_checkpoint

    before = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads[0])
    started = time.perf_counter()
    saved = load_checkpoint(checkpoint)
    model = saved.build_model()
    created = time.perf_counter() - started
    feed = _random_feed(np.float32, tuple(saved.card.input_shape))

    def run(x: np.ndarray) -> Any:
        with torch.inference_mode():
            return model(torch.from_numpy(x))

    first_started = time.perf_counter()
    run(feed(1))
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
    restore = lambda: torch.set_num_threads(before)  # noqa: E731
    return Subject(info.name, run, feed, info, (_TORCH_COLD, [str(checkpoint)]), restore, (RuntimeError,))
