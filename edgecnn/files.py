"""Artifact names and atomic writes: a reader (or a crash) never sees a half-written artifact."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "CHECKPOINT_NAME",
    "METRICS_NAME",
    "CURVES_NAME",
    "CONFUSION_NAME",
    "checkpoint_path",
    "report_path",
    "atomic_path",
    "write_json",
]

# What a training run writes into its --out folder.
CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.json"
CURVES_NAME = "curves.png"
CONFUSION_NAME = "confusion.png"


def checkpoint_path(path: str | os.PathLike[str]) -> Path:
    """A run folder or a checkpoint file → the checkpoint file."""
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def report_path(model_path: str | os.PathLike[str]) -> Path:
    """``MODEL.onnx`` → ``MODEL.report.json``, the export's report card beside it."""
    path = Path(model_path)
    return path.with_name(path.stem + ".report.json")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; artifacts get the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _umask() -> int:
    # Linux reports the mask; elsewhere it can only be read by setting it (restored at once)
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path("/proc/self/status").read_text().split("Umask:")[1].split()[0], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
