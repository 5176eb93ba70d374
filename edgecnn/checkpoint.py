"""Checkpoint files: plain data and tensors only, so ``torch.load(weights_only=True)`` reads them.

A checkpoint is a dict: ``format``, ``edgecnn_version``, ``arch``, ``config`` (plain data),
``class_names``, ``normalization``, ``input_shape``, ``dataset``, ``epoch``, ``step``, ``model_state``,
``optimizer_state``, ``rng`` and ``metrics`` (one dict per finished epoch).
"""

from __future__ import annotations

import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgecnn.architectures import create
from edgecnn.errors import ModelFileError
from edgecnn.files import atomic_path

__all__ = ["CHECKPOINT_NAME", "save_checkpoint", "load_checkpoint", "model_from_checkpoint",
           "capture_rng", "restore_rng"]

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT = "edgecnn-checkpoint-1"
_REQUIRED = ("arch", "config", "class_names", "normalization", "input_shape", "epoch", "step",
             "model_state", "optimizer_state", "rng", "metrics")


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint safely (weights_only) onto the CPU; refuse anything that is not ours."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise ModelFileError(f"no checkpoint at {path}; train one with `edgecnn train --out DIR`")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile,
            UnicodeDecodeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path} is not a readable edgecnn checkpoint ({reason[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not an edgecnn checkpoint (expected format {FORMAT!r})")
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise ModelFileError(f"{path} lacks {', '.join(missing)}; was it written by edgecnn?")
    return state


def model_from_checkpoint(state: dict[str, Any]) -> nn.Module:
    """The trained net in eval mode, on the CPU, in standard (contiguous) memory layout."""
    channels, height, width = state["input_shape"]
    model = create(state["arch"], num_classes=len(state["class_names"]), in_channels=channels,
                   input_size=(height, width))
    try:
        model.load_state_dict(state["model_state"])
    except RuntimeError as exc:
        raise ModelFileError(f"checkpoint weights do not fit {state['arch']}: {str(exc).splitlines()[0]}") from None
    return model.eval()


def capture_rng(shuffle: torch.Generator) -> dict[str, Any]:
    """Every RNG a run touches, as tensors and plain data (weights_only-loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "shuffle": shuffle.get_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
    }


def restore_rng(rng: dict[str, Any], shuffle: torch.Generator) -> None:
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    shuffle.set_state(rng["shuffle"])
    np_state = rng["numpy"]
    np.random.set_state((np_state["kind"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
