"""Checkpoint files: plain data and tensors only, so ``torch.load(weights_only=True)`` reads them.

On disk a checkpoint is the dict :meth:`Checkpoint.to_dict` makes: ``format``, ``card`` (the
:class:`~edgecnn.card.ModelCard` as plain data), ``config`` (the :class:`~edgecnn.config.TrainConfig`),
``epoch``, ``step``, ``model_state`` (the weights the run chose: the best epoch on the validation set),
``best_epoch``, ``last_state`` (the last epoch's weights, where a resumed run continues), ``optimizer_state``,
``rng``, ``history`` (one dict per finished epoch) and ``position`` (None at an epoch's end; mid-epoch, where
in the unfinished epoch the run is: batches done, the shuffle state its order was drawn from, its loss and
correct counts so far). :class:`Checkpoint` is the one definition of that layout.
"""

from __future__ import annotations

import pickle
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgecnn.card import ModelCard
from edgecnn.config import TrainConfig, config_from_dict, config_to_dict
from edgecnn.errors import ConfigError, ModelFileError, describe
from edgecnn.files import atomic_path, checkpoint_path
from edgecnn.training.architectures import create

__all__ = [
    "FORMAT",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "load_weights",
    "nonfinite_tensors",
    "capture_rng",
    "restore_rng",
]

FORMAT = "edgecnn-checkpoint-3"
_LOAD_ERRORS = (
    pickle.UnpicklingError,
    RuntimeError,
    EOFError,
    OSError,
    ValueError,
    zipfile.BadZipFile,
    UnicodeDecodeError,
)


@dataclass(frozen=True)
class Checkpoint:
    """A training run at the end of an epoch: the model's card, the config, weights and every RNG."""

    card: ModelCard
    config: TrainConfig
    epoch: int
    step: int
    model_state: dict[str, torch.Tensor]  # the chosen weights: what build_model and export use
    best_epoch: int  # the epoch model_state comes from (the best on validation; the last without one)
    last_state: dict[str, torch.Tensor]  # the last finished epoch's weights, for --resume
    optimizer_state: dict[str, Any]
    rng: dict[str, Any]
    history: tuple[dict[str, Any], ...]  # per finished epoch: losses, accuracies, seconds, samples/s
    position: dict[str, Any] | None = None  # mid-epoch: batches done, epoch's shuffle state, loss/correct sums

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "card": self.card.to_dict(),
            "config": config_to_dict(self.config),
            "epoch": self.epoch,
            "step": self.step,
            "model_state": self.model_state,
            "best_epoch": self.best_epoch,
            "last_state": self.last_state,
            "optimizer_state": self.optimizer_state,
            "rng": self.rng,
            "history": list(self.history),
            "position": self.position,
        }

    @classmethod
    def from_dict(cls, state: Any, *, path: Path) -> Checkpoint:
        """Every field checked: types, the config through TrainConfig's own validation, the card against
        the config (same arch), the history against the epoch; the weights against the net in build_model."""
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            found = state.get("format") if isinstance(state, dict) else None
            hint = "; it was written by an older edgecnn: train it again" if str(found).startswith("edgecnn-") else ""
            raise ModelFileError(f"{path} is not an edgecnn checkpoint (expected format {FORMAT!r}){hint}", path=path)
        missing = [k for k in _FIELDS if k not in state]
        if missing:
            raise ModelFileError(f"{path} lacks {', '.join(missing)}; was it written by edgecnn?", path=path)
        card = ModelCard.from_dict(state["card"], source=str(path))
        try:
            config = config_from_dict(TrainConfig, state["config"])
        except (ConfigError, TypeError) as exc:
            raise ModelFileError(f"{path}: its training config is invalid ({describe(exc)})", path=path) from exc
        _check_fields(state, path, card, config)
        return cls(
            card=card,
            config=config,
            epoch=state["epoch"],
            step=state["step"],
            model_state=state["model_state"],
            best_epoch=state["best_epoch"],
            last_state=state["last_state"],
            optimizer_state=state["optimizer_state"],
            rng=state["rng"],
            history=tuple(state["history"]),
            position=_checked_position(state.get("position"), path),
        )

    def build_model(self) -> nn.Module:
        """The trained net in eval mode, on the CPU, in standard (contiguous) memory layout."""
        channels, height, width = self.card.input_shape
        model = create(
            self.card.arch, num_classes=len(self.card.class_names), in_channels=channels, input_size=(height, width)
        )
        load_weights(model, self.model_state, what=f"checkpoint weights for {self.card.arch}")
        return model.eval()


_FIELDS = (
    "card",
    "config",
    "epoch",
    "step",
    "model_state",
    "best_epoch",
    "last_state",
    "optimizer_state",
    "rng",
    "history",
)


def _check_fields(state: dict[str, Any], path: Path, card: ModelCard, config: TrainConfig) -> None:
    problems = []
    if card.arch != config.arch:
        problems.append(f"its card says arch {card.arch!r} but its config {config.arch!r}")
    counts = ("epoch", "step", "best_epoch")
    if not all(isinstance(state[k], int) and not isinstance(state[k], bool) and state[k] >= 0 for k in counts):
        problems.append("epoch, step and best_epoch must be whole numbers ≥ 0")
    elif state["best_epoch"] > state["epoch"]:
        problems.append(f"its best epoch ({state['best_epoch']}) comes after its last ({state['epoch']})")
    history = state["history"]
    if (
        not isinstance(history, (list, tuple))
        or not all(isinstance(h, dict) for h in history)
        or len(history) != state["epoch"]
    ):
        problems.append("its history must hold one record per finished epoch")
    for name in ("model_state", "last_state"):
        weights = state[name]
        if not isinstance(weights, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
        ):
            problems.append(f"{name} must map parameter names to tensors")
    if not isinstance(state["optimizer_state"], dict) or not isinstance(state["rng"], dict):
        problems.append("optimizer_state and rng must be mappings")
    for name in ("model_state", "last_state", "optimizer_state"):
        broken = nonfinite_tensors(state[name]) if not problems else []
        if broken:  # refused at load: export, verify and --resume alike
            problems.append(f"{name} holds NaN or infinite values in {', '.join(broken[:3])}")
    if problems:
        raise ModelFileError(f"{path} is malformed: {'; '.join(problems)}", path=path)


def _checked_position(position: Any, path: Path) -> dict[str, Any] | None:
    """None, or a mid-epoch position: batches done (≥ 1), the epoch's shuffle state, its running sums."""
    if position is None:
        return None
    fine = (
        isinstance(position, dict)
        and isinstance(position.get("batches"), int)
        and not isinstance(position.get("batches"), bool)
        and position["batches"] >= 1
        and all(isinstance(position.get(k), torch.Tensor) for k in ("shuffle", "loss_sum", "correct"))
    )
    if not fine:
        raise ModelFileError(f"{path} is malformed: its mid-epoch position is not what edgecnn writes", path=path)
    return position


def nonfinite_tensors(state: Any, prefix: str = "") -> list[str]:
    """The names of the float tensors holding NaN or inf in ``state``, a model's or an optimizer's (nested: an
    optimizer's moments are ``state.0.exp_avg``)."""
    if isinstance(state, torch.Tensor):
        return [prefix or "tensor"] if state.is_floating_point() and not torch.isfinite(state).all() else []
    items = state.items() if isinstance(state, dict) else enumerate(state) if isinstance(state, (list, tuple)) else ()
    return [name for key, value in items for name in nonfinite_tensors(value, f"{prefix}.{key}".lstrip("."))]


def load_weights(module: nn.Module | torch.optim.Optimizer, state: Any, *, what: str) -> None:
    """``load_state_dict`` whose every failure (missing or extra keys, shapes, types) is a ModelFileError,
    and whose weights must be finite: a checkpoint never turns into a model that returns NaN."""
    broken = nonfinite_tensors(state)
    if broken:
        more = f" and {len(broken) - 3} more" if len(broken) > 3 else ""
        raise ModelFileError(f"{what} hold NaN or infinite values ({', '.join(broken[:3])}{more})")
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, KeyError, ValueError, AttributeError, IndexError) as exc:
        raise ModelFileError(f"{what} do not fit: {describe(exc)}") from exc


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as stream:
        torch.save(checkpoint.to_dict(), stream)  # to a file object, a failed write is an OSError, not a RuntimeError


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint (a file, or a run folder holding one) safely, weights_only, onto the CPU."""
    path = checkpoint_path(path)
    if not path.is_file():
        raise ModelFileError(f"no checkpoint at {path}; train one with `edgecnn train --out DIR`", path=path)
    _check_integrity(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except _LOAD_ERRORS as exc:
        raise ModelFileError(f"{path} is not a readable edgecnn checkpoint ({describe(exc)})", path=path) from exc
    return Checkpoint.from_dict(state, path=path)


def _check_integrity(path: Path) -> None:
    """torch.save writes a zip whose members carry CRC-32s that torch.load never checks: a flipped bit in
    the weights would load as a different model. Check them first (reads the file once)."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise ModelFileError(f"{path} is not a readable edgecnn checkpoint ({describe(exc)})", path=path) from exc
    if bad is not None:
        raise ModelFileError(f"{path} is corrupt: {bad} fails its checksum (a damaged copy or disk)", path=path)


def capture_rng(shuffle: torch.Generator, augment: torch.Generator) -> dict[str, Any]:
    """Every RNG a run touches, as tensors and plain data (weights_only-loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "shuffle": shuffle.get_state(),
        "augment": augment.get_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": random.getstate(),
    }


def restore_rng(rng: dict[str, Any], shuffle: torch.Generator, augment: torch.Generator) -> None:
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    shuffle.set_state(rng["shuffle"])
    augment.set_state(rng["augment"])
    np_state = rng["numpy"]
    np.random.set_state(
        (
            np_state["kind"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
