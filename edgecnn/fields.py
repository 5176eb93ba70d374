"""Type and range checks of the config dataclasses' numeric fields, by field name, for every config, and
configs to and from plain data (re-exported by :mod:`edgecnn.config`)."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, TypeVar

from edgecnn.errors import ConfigError

__all__ = [
    "AUTO_BACKENDS",
    "RANGES",
    "auto_backend_problems",
    "check_fields",
    "config_to_dict",
    "config_from_dict",
    "config_to_json",
]

# Ranges of every numeric field, by name: finite numbers, whole where the field is an int. The upper
# bounds are far beyond any real use and stop a typo (or a hostile config) before it allocates or loops.
AUTO_BACKENDS = ("onnxruntime", "openvino")  # what auto measures; onnxruntime runs the reference and is the fallback
RANGES: dict[str, tuple[float, float]] = {
    "epochs": (1, 100_000),
    "batch_size": (1, 65_536),
    "lr": (1e-12, 10.0),
    "momentum": (0.0, 0.999999),
    "weight_decay": (0.0, 1.0),
    "seed": (0, 2**63 - 1),
    "warmup_epochs": (0.0, 100_000.0),
    "label_smoothing": (0.0, 0.99),
    "val_size": (0, 10**9),
    "patience": (0, 100_000),
    "limit_train": (1, 10**9),
    "image_size": (8, 4096),
    "test_fraction": (1e-6, 1 - 1e-6),
    "opset": (13, 23),
    "min_weight_elements": (0, 2**40),
    "calibration_samples": (1, 10**6),
    "max_accuracy_drop": (0.0, 100.0),
    "parity_samples": (1, 10**7),
    "latency_iters": (1, 10**6),
    "batch_size_hint": (1, 4096),
    "batch_sizes": (1, 4096),
    "threads": (1, 1024),
    "warmup": (0, 10**6),
    "iters": (1, 10**7),
    "duration": (1e-3, 86_400.0),
    "budget": (0.05, 86_400.0),
    "samples": (1, 10**6),
    "jobs": (1, 256),
    "cold_runs": (0, 1000),
    "shape": (1, 8192),
    "checkpoint_every": (1, 10**9),
    "dist_timeout": (1.0, 86_400.0),
    "max_memory_gb": (0.0, 2.0**30),
    "workers": (0, 256),
    "port": (0, 65_535),
    "replicas": (1, 4096),
    "max_replicas": (1, 4096),
    "max_batch": (1, 4096),
    "max_delay_ms": (0.0, 10_000.0),
    "queue": (1, 10**6),
    "max_body_bytes": (1024, 1 << 34),
    "max_images": (1, 4096),
    "max_pixels": (1, 10**9),
    "max_header_bytes": (1024, 1 << 20),
    "max_headers": (8, 10_000),
    "max_url_bytes": (256, 1 << 20),
    "call_timeout": (1e-3, 86_400.0),
    "drain_timeout": (0.0, 86_400.0),
    "max_requests": (1, 10**12),
    "stop_after": (1e-3, 10**7),
    "mean": (-1e6, 1e6),
    "std": (1e-9, 1e6),
}


def check_fields(config: Any) -> list[str]:
    """Type and range of every numeric field (and tuple of numbers) of a config dataclass."""
    problems = []
    for field in dataclasses.fields(config):
        value, kind = getattr(config, field.name), str(field.type)
        if value is None and "None" in kind:
            continue
        whole = "int" in kind.split(" | ")[0]
        values = value if kind.startswith("tuple[") and isinstance(value, tuple) else (value,)
        if field.name in RANGES and not all(_in_range(v, whole, *RANGES[field.name]) for v in values):
            low, high = RANGES[field.name]
            problems.append(
                f"{field.name} must be {'whole numbers' if whole else 'finite numbers'} in "
                f"{low:g}–{high:g} (got {value!r:.60})"
            )
    return problems


def _in_range(value: Any, whole: bool, low: float, high: float) -> bool:
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        return False
    return math.isfinite(value) and low <= value <= high


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


def config_to_json(config: Any) -> str:
    """Sorted, indented JSON of a config (what run folders and the test cache key hold)."""
    return json.dumps(config_to_dict(config), indent=2, sort_keys=True)


def auto_backend_problems(backends: tuple[str, ...] | None) -> list[str]:
    """What is wrong with the backends auto or tune is asked to measure on (None: every one installed)."""
    if backends is not None and (set(backends) - set(AUTO_BACKENDS) or "onnxruntime" not in backends):
        return [
            f"backends must be onnxruntime, plus openvino if wanted (got {','.join(backends) or 'none'}): "
            "onnxruntime runs the reference and is every file's fallback"
        ]
    return []
