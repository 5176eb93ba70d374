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
from edgecnn.errors import ModelFileError
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


_DTYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(float16)": np.float16}

_ONNX_COLD = """
import sys, numpy as np
from edgecnn.runtime import Predictor
predictor = Predictor(sys.argv[1], provider=sys.argv[2])
shape = [1] + [int(d) for d in sys.argv[3].split(",")]
predictor.logits(np.zeros(shape, dtype=sys.argv[4]))
"""


def onnx_subject(path: Path, config: BenchConfig, *, spinning: bool) -> Subject:
    """An edgecnn model file, opened with the Predictor's provider rules; timed through its session."""
    from edgecnn.runtime import Predictor
    from edgecnn.runtime.session import physical_cores

    started = time.perf_counter()
    predictor = Predictor(path, provider=config.provider, threads=config.threads, spinning=spinning)
    created = time.perf_counter() - started
    graph_input = predictor.session.get_inputs()[0]
    dtype = _DTYPES.get(graph_input.type)
    if dtype is None:
        raise ModelFileError(f"{path}: cannot bench an input of type {graph_input.type}", path=path)
    shape = predictor.metadata.input.graph_shape
    rng = np.random.default_rng(0)

    def feed(batch: int) -> dict[str, Any]:
        if dtype == np.uint8:
            return {graph_input.name: rng.integers(0, 256, (batch, *shape), dtype=np.uint8)}
        return {graph_input.name: rng.standard_normal((batch, *shape)).astype(dtype)}

    run = predictor.session.run
    first_started = time.perf_counter()
    run(None, feed(1))
    info = ModelInfo(
        name=str(path),
        kind="onnxruntime",
        file_bytes=path.stat().st_size,
        provider=predictor.provider,
        threads=config.threads or physical_cores(),
        quantization=str(predictor.metadata.quantization.get("mode")),
        session_create_ms=created * 1e3,
        first_inference_ms=(time.perf_counter() - first_started) * 1e3,
    )
    cold = (_ONNX_COLD, [str(path), predictor.provider, ",".join(map(str, shape)), np.dtype(dtype).name])
    return Subject(str(path), run, feed, info, cold)


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
