"""Frozen, JSON-round-trippable configs, one per pipeline stage.

CLI options map 1:1 onto these fields; library functions take a config, never an argparse/click
namespace. Each default says why it is what it is.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from edgecnn.errors import ConfigError

__all__ = [
    "TrainConfig",
    "ExportConfig",
    "QuantizeConfig",
    "BenchConfig",
    "config_to_dict",
    "config_from_dict",
    "config_to_json",
    "resolve_data_root",
    "OPTIMIZERS",
    "DEVICES",
    "PROVIDERS",
    "CALIBRATION_METHODS",
    "PARITY_BATCH_SIZES",
    "REPORT_BATCH_SIZES",
    "FIT_MODES",
    "INPUT_LAYOUTS",
]

OPTIMIZERS = ("adam", "sgd", "rmsprop")
DEVICES = ("auto", "cpu", "cuda")  # torch devices for training
PROVIDERS = ("auto", "cpu", "cuda")  # onnxruntime execution providers, as users name them
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
PARITY_BATCH_SIZES = (1, 2, 7, 64)  # parity runs every image at each: 1 and 2 catch a batch axis fixed
#   at export, 7 an odd remainder, 64 the kernels' batched paths
FIT_MODES = ("stretch", "pad", "crop", "object", "digit")  # how a photo is framed (runtime/framing.py)
INPUT_LAYOUTS = ("NCHW", "NHWC")  # float32 input of a model without edgecnn metadata: torch or Keras order
REPORT_BATCH_SIZES = (1, 32)  # the export report card's and auto's latency: one frame, one small batch


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (and nothing about where it prints)."""

    arch: str = "fashion_bn"  # the smallest seed net; reaches ~87 % on Fashion-MNIST in one epoch
    dataset: str = "fashion-mnist"  # "mnist", "fashion-mnist" or a path to an image folder
    epochs: int = 5  # the tutorials train 5–15 epochs; 5 is where most of them flatten out
    batch_size: int = 100  # the seed tutorials' batch size
    lr: float = 1e-3  # Adam's default, used by every seed tutorial
    optimizer: str = "adam"  # the seed tutorials all use Adam
    momentum: float = 0.9  # only for sgd/rmsprop; 0.9 is the usual choice for small CNNs
    weight_decay: float = 0.0  # the tutorials use none
    seed: int = 0  # fixed by default so two runs of the same command agree
    limit_train: int | None = None  # a seeded random subset of the training set, for quick runs
    image_size: int = 28  # input side for image folders; MNIST-style sets are 28×28 already
    test_fraction: float = 0.2  # held-out share of an image folder that has no train/ + test/ split
    device: str = "auto"  # cuda when torch sees one, else cpu
    data_root: str | None = None  # None: $EDGECNN_DATA, else the user cache dir

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs must be ≥ 1 (got {self.epochs})")
        if self.batch_size < 1:
            problems.append(f"batch_size must be ≥ 1 (got {self.batch_size})")
        if not self.lr > 0:
            problems.append(f"lr must be > 0 (got {self.lr})")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {', '.join(OPTIMIZERS)} (got {self.optimizer!r})")
        if self.device not in DEVICES:
            problems.append(f"device must be one of {', '.join(DEVICES)} (got {self.device!r})")
        if self.limit_train is not None and self.limit_train < 1:
            problems.append(f"limit_train must be ≥ 1 (got {self.limit_train})")
        if self.image_size < 8:
            problems.append(f"image_size must be ≥ 8 (got {self.image_size})")
        if not 0.0 < self.test_fraction < 1.0:
            problems.append(f"test_fraction must be between 0 and 1 (got {self.test_fraction})")
        if problems:
            raise ConfigError("; ".join(problems))


@dataclass(frozen=True)
class ExportConfig:
    """How a checkpoint becomes an ONNX file, and the gates it must pass."""

    opset: int = 18  # the torch.export-based exporter's native opset; onnxruntime ≥1.14 runs it
    quantize: str = "none"  # fp32 unless asked: int8 is a trade the user (or `auto`'s measurement) makes
    quantize_ops: tuple[str, ...] | None = None  # None: the mode's own choice (dynamic: MatMul, Gemm)
    min_weight_elements: int = 65536  # dynamic: smaller MatMul/Gemm weights lose more to the
    #   per-call activation quantization than they gain (measured: fashion_bn's 1568×10 head)
    calibration_samples: int = 500  # static: measured on three seed nets, 300 → 1,000 images moved
    #   top-1 agreement with fp32 from 99.0–99.5 % to 99.3–99.7 %; 500 keeps calibration under a second
    calibration_method: str = "minmax"  # static: the cheapest; entropy/percentile for outlier-heavy nets
    max_accuracy_drop: float = 0.3  # percentage points a quantized model may lose vs torch
    parity_samples: int = 10000  # the whole MNIST-style test set; lower it for quick checks
    bake_preprocessing: bool = False  # True: the graph takes raw uint8 pixels and normalises itself
    latency_iters: int = 200  # timed runs per variant and batch size for the report card and `auto`
    seed: int = 0  # picks the calibration sample
    data_root: str | None = None  # None: the checkpoint's own, else $EDGECNN_DATA / the cache dir

    def __post_init__(self) -> None:
        problems = _quantization_problems(self, "quantize", self.quantize)
        if not 13 <= self.opset <= 23:
            problems.append(f"opset must be between 13 and 23 (got {self.opset})")
        if problems:
            raise ConfigError("; ".join(problems))


@dataclass(frozen=True)
class QuantizeConfig:
    """How an existing fp32 ONNX file becomes a quantized one, gated against that file on real data."""

    mode: str = "auto"  # measure dynamic and static against fp32 on this machine, keep the fastest that passes
    calibration: str | None = None  # mnist, fashion-mnist or an image folder; None: the model card's dataset
    quantize_ops: tuple[str, ...] | None = None  # None: the mode's own choice (dynamic: MatMul, Gemm)
    min_weight_elements: int = 65536  # dynamic: as ExportConfig
    calibration_samples: int = 500  # static: as ExportConfig
    calibration_method: str = "minmax"  # static: as ExportConfig
    max_accuracy_drop: float = 0.3  # percentage points the quantized file may lose vs the fp32 file
    parity_samples: int = 10000  # labelled test images the gates see
    latency_iters: int = 200  # timed runs per variant and batch size
    seed: int = 0  # picks the calibration sample
    data_root: str | None = None  # None: $EDGECNN_DATA / the cache dir
    classes: tuple[str, ...] | None = None  # a file without edgecnn metadata: its class names (else the data's)
    mean: tuple[float, ...] | None = None  # … and the normalization it was trained with, per channel
    std: tuple[float, ...] | None = None
    layout: str | None = None  # … and "NCHW" (default) or "NHWC"

    def __post_init__(self) -> None:
        problems = _quantization_problems(self, "mode", self.mode)
        if problems:
            raise ConfigError("; ".join(problems))


def _quantization_problems(config: Any, mode_name: str, mode: str) -> list[str]:
    from edgecnn.export.modes import quantize_choices  # torch- and onnx-free: the mode registry only

    problems = []
    if mode not in quantize_choices():
        problems.append(f"{mode_name} must be one of {', '.join(quantize_choices())} (got {mode!r})")
    if config.calibration_method not in CALIBRATION_METHODS:
        problems.append(
            f"calibration_method must be one of {', '.join(CALIBRATION_METHODS)} (got {config.calibration_method!r})"
        )
    for name in ("calibration_samples", "parity_samples", "latency_iters"):
        if getattr(config, name) < 1:
            problems.append(f"{name} must be ≥ 1 (got {getattr(config, name)})")
    if config.min_weight_elements < 0 or not 0 <= config.max_accuracy_drop <= 100:
        problems.append("min_weight_elements must be ≥ 0 and max_accuracy_drop within 0–100")
    return problems


@dataclass(frozen=True)
class BenchConfig:
    """What `edgecnn bench` measures and how long."""

    provider: str = "auto"  # as the Predictor: cuda when onnxruntime offers a working one, else cpu
    batch_sizes: tuple[int, ...] = (1, 8, 64)  # a camera frame, a small burst, a throughput batch
    threads: int | None = None  # None: onnxruntime's default (one per physical core)
    warmup: int = 20  # untimed runs per model and batch size: first calls allocate and pack weights
    iters: int = 200  # timed runs per model and batch size (ignored when duration is set)
    duration: float | None = None  # seconds per batch size for all models together, instead of iters
    cold_runs: int = 3  # fresh processes per model for the cold-start figure (median)
    allow_fallback: bool = False  # provider cuda without a working CUDA: refuse (False) or warn and use the CPU
    shape: tuple[int, ...] | None = None  # a model whose input has symbolic sizes besides the batch: one
    #   input's dims after the batch axis (e.g. 3,224,224); edgecnn models know their own

    def __post_init__(self) -> None:
        problems = []
        if self.shape is not None and (not self.shape or any(d < 1 for d in self.shape)):
            problems.append(f"shape must be sizes ≥ 1 (got {self.shape})")
        if self.provider not in PROVIDERS:
            problems.append(f"provider must be one of {', '.join(PROVIDERS)} (got {self.provider!r})")
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            problems.append(f"batch sizes must be whole numbers ≥ 1 (got {self.batch_sizes})")
        if self.threads is not None and self.threads < 1:
            problems.append(f"threads must be ≥ 1 (got {self.threads})")
        if self.warmup < 0 or self.iters < 1 or self.cold_runs < 0:
            problems.append("warmup and cold_runs must be ≥ 0 and iters ≥ 1")
        if self.duration is not None and not self.duration > 0:
            problems.append(f"duration must be > 0 seconds (got {self.duration})")
        if problems:
            raise ConfigError("; ".join(problems))


C = TypeVar("C")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain data (str/int/float/None) for JSON files and checkpoints."""
    return dataclasses.asdict(config)


def config_from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Rebuild a config, refusing unknown keys so a typo never passes silently."""
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
    return cls(**data)


def resolve_data_root(data_root: str | os.PathLike[str] | None = None) -> Path:
    """--data-root, else $EDGECNN_DATA, else the user cache dir (where downloads go)."""
    if data_root:
        return Path(data_root).expanduser()
    env = os.environ.get("EDGECNN_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "edgecnn" / "datasets"


def config_to_json(config: Any) -> str:
    """Sorted, indented JSON of a config (what run folders and the test cache key hold)."""
    return json.dumps(config_to_dict(config), indent=2, sort_keys=True)
