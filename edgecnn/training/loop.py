"""fit / evaluate / checkpoint / resume. No click, no argparse: callers pass a :class:`TrainConfig`.

Speed comes from three choices measured against the tutorials' loop (tools/bench_train.py): the data
sits in memory as one uint8 tensor (no per-item PIL decode), the net and its input use channels-last
memory (faster oneDNN convolutions), and Adam/SGD use their fused kernels.

Determinism: every RNG the run touches (torch's global one for init and dropout, a dedicated shuffle
generator, numpy's and Python's) is seeded from ``config.seed`` and saved in each epoch's checkpoint,
so ``resume`` continues exactly where an uninterrupted run would be.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from edgecnn import __version__
from edgecnn.card import Lineage, ModelCard, config_hash
from edgecnn.config import TrainConfig, config_to_dict
from edgecnn.errors import ConfigError, DeviceError, ModelFileError, TrainingError, describe
from edgecnn.files import CHECKPOINT_NAME
from edgecnn.training.architectures import create, get_arch
from edgecnn.training.checkpoint import (
    Checkpoint,
    capture_rng,
    load_checkpoint,
    load_weights,
    restore_rng,
    save_checkpoint,
)
from edgecnn.training.data import DatasetBundle, load_dataset_for
from edgecnn.training.reports import write_reports

__all__ = ["TrainResult", "fit", "evaluate", "resume_config", "resolve_device", "RESUMABLE_FIELDS"]

# Fields a resumed run may change; anything else would make the resumed run a different run.
RESUMABLE_FIELDS = ("epochs", "device", "data_root")
StepHook = Callable[[int, int], None]  # (epoch, step) after each optimizer step


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    model: nn.Module
    card: ModelCard
    epochs: list[dict[str, Any]]
    test_accuracy: float
    confusion: list[list[int]]

    def summary(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "test_accuracy": self.test_accuracy, "epochs": self.epochs}


@dataclass
class _Run:
    """What one training run holds while it runs."""

    config: TrainConfig
    data: DatasetBundle
    device: torch.device
    model: nn.Module
    optimizer: torch.optim.Optimizer
    shuffle: torch.Generator
    history: list[dict[str, Any]] = field(default_factory=list)
    step: int = 0

    def card(self) -> ModelCard:
        last = self.history[-1] if self.history else {}
        metrics = {k: float(last[k]) for k in ("test_accuracy", "test_loss") if k in last}
        return ModelCard(
            arch=self.config.arch,
            class_names=self.data.class_names,
            input_shape=self.data.input_shape,
            normalization=self.data.normalization,
            dataset=self.data.name,
            metrics={**metrics, "epochs": float(len(self.history))},
            lineage=Lineage(config_hash(config_to_dict(self.config)), self.data.checksum(), __version__),
        )

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(
            card=self.card(),
            config=self.config,
            epoch=len(self.history),
            step=self.step,
            model_state=self.model.state_dict(),
            optimizer_state=self.optimizer.state_dict(),
            rng=capture_rng(self.shuffle),
            history=tuple(self.history),
        )


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda was asked for, but torch sees no CUDA device; use --device cpu or auto")
    return torch.device(name)


def resume_config(out_dir: str | Path, overrides: dict[str, Any]) -> TrainConfig:
    """The config saved in ``out_dir``'s checkpoint with ``overrides`` applied (``fit`` refuses any
    override outside :data:`RESUMABLE_FIELDS` that changes the run)."""
    return dataclasses.replace(load_checkpoint(Path(out_dir) / CHECKPOINT_NAME).config, **overrides)


def fit(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = False,
    data: DatasetBundle | None = None,
    on_step: StepHook | None = None,
) -> TrainResult:
    """Train ``config.arch`` and write checkpoint.pt, metrics.json, curves.png, confusion.png."""
    out = Path(out_dir)
    run = _start(config, data)
    if resume:
        _restore(run, load_checkpoint(out / CHECKPOINT_NAME))
    train_x, train_y = (t.to(run.device) for t in _limit(run.data, config.limit_train, config.seed))
    test_x, test_y = run.data.test_images.to(run.device), run.data.test_labels.to(run.device)
    confusion: list[list[int]] = []
    for epoch in range(len(run.history) + 1, config.epochs + 1):
        confusion = _run_epoch(run, (train_x, train_y), (test_x, test_y), epoch, progress, on_step)
        save_checkpoint(out / CHECKPOINT_NAME, run.checkpoint())
    if not confusion:  # resumed a run that had already finished: recompute for the report
        confusion = evaluate(run.model, run.data, test_x, test_y)[2]
    write_reports(out, config, run.data, run.model, run.history, confusion, run.device)
    model = run.model.eval().to(memory_format=torch.contiguous_format)  # channels-last was for training speed
    accuracy = run.history[-1]["test_accuracy"]
    return TrainResult(out, model, run.card(), run.history, test_accuracy=accuracy, confusion=confusion)


def _run_epoch(
    run: _Run,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    epoch: int,
    progress: bool,
    on_step: StepHook | None,
) -> list[list[int]]:
    """Train one epoch, evaluate, append the epoch's figures to the history; return the confusion matrix."""
    started = time.perf_counter()
    loss, acc = _train_epoch(run, *train, epoch=epoch, progress=progress, on_step=on_step)
    train_seconds = time.perf_counter() - started
    if not math.isfinite(loss):
        kept = f"the checkpoint of epoch {epoch - 1} is kept" if epoch > 1 else "no checkpoint was written"
        raise TrainingError(
            f"training diverged in epoch {epoch}: the loss became {loss} (lr {run.config.lr:g} is "
            f"likely too high for {run.config.optimizer}); {kept}"
        )
    test_loss, test_acc, confusion = evaluate(run.model, run.data, *test)
    run.history.append(
        {
            "epoch": epoch,
            "train_loss": loss,
            "train_accuracy": acc,
            "test_loss": test_loss,
            "test_accuracy": test_acc,
            "seconds": round(time.perf_counter() - started, 3),
            "train_seconds": round(train_seconds, 3),
            "samples_per_s": round(len(train[1]) / train_seconds, 1),
        }
    )
    return confusion


def _start(config: TrainConfig, data: DatasetBundle | None) -> _Run:
    get_arch(config.arch)  # an unknown name fails before minutes of data loading, not after
    device = resolve_device(config.device)
    _seed_everything(config.seed, device)
    data = data or load_dataset_for(config)
    channels, height, width = data.input_shape
    model = create(config.arch, num_classes=len(data.class_names), in_channels=channels, input_size=(height, width)).to(
        device, memory_format=torch.channels_last
    )
    return _Run(
        config=config,
        data=data,
        device=device,
        model=model,
        optimizer=_make_optimizer(config, model),
        shuffle=torch.Generator().manual_seed(config.seed),
    )


def _restore(run: _Run, saved: Checkpoint) -> None:
    _check_same_run(saved, run.config)
    load_weights(run.model, saved.model_state, what=f"the checkpoint's weights for {saved.card.arch}")
    load_weights(run.optimizer, saved.optimizer_state, what="the checkpoint's optimizer state")
    try:
        restore_rng(saved.rng, run.shuffle)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise ModelFileError(f"the checkpoint's RNG state cannot be restored ({describe(exc)})") from exc
    run.history, run.step = list(saved.history), saved.step


def _train_epoch(
    run: _Run, images: torch.Tensor, labels: torch.Tensor, *, epoch: int, progress: bool, on_step: StepHook | None
) -> tuple[float, float]:
    model, optimizer, batch_size = run.model, run.optimizer, run.config.batch_size
    model.train()
    order = torch.randperm(len(labels), generator=run.shuffle).to(labels.device)
    loss_sum = torch.zeros((), device=labels.device)
    correct = torch.zeros((), dtype=torch.long, device=labels.device)
    batches = range(0, len(labels), batch_size)
    for start in tqdm(
        batches, desc=f"epoch {epoch}/{run.config.epochs}", unit="batch", disable=not progress, leave=False
    ):
        idx = order[start : start + batch_size]
        x = run.data.normalize(images[idx]).contiguous(memory_format=torch.channels_last)
        y = labels[idx]
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        run.step += 1
        loss_sum += loss.detach() * len(y)  # no .item() per step: it would sync a GPU every batch
        correct += (logits.argmax(1) == y).sum()
        if on_step is not None:
            on_step(epoch, run.step)
    return round(float(loss_sum) / len(labels), 6), round(int(correct) / len(labels), 6)


@torch.no_grad()
def evaluate(
    model: nn.Module, data: DatasetBundle, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 1000
) -> tuple[float, float, list[list[int]]]:
    """Mean cross-entropy, accuracy and the confusion matrix (rows true, columns predicted)."""
    model.eval()
    classes = len(data.class_names)
    confusion = torch.zeros(classes, classes, dtype=torch.long)
    loss_sum = 0.0
    for start in range(0, len(labels), batch_size):
        x = data.normalize(images[start : start + batch_size]).contiguous(memory_format=torch.channels_last)
        y = labels[start : start + batch_size]
        logits = model(x)
        loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        confusion += torch.bincount((y * classes + logits.argmax(1)).cpu(), minlength=classes * classes).view(
            classes, classes
        )
    n = len(labels)
    return round(loss_sum / n, 6), round(int(confusion.trace()) / n, 6), confusion.tolist()


def _make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params, lr, wd = model.parameters(), config.lr, config.weight_decay
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, fused=True)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=wd, fused=True)
    return torch.optim.RMSprop(params, lr=lr, momentum=config.momentum, weight_decay=wd)


def _seed_everything(seed: int, device: torch.device) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def _limit(data: DatasetBundle, limit: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = data.train_images, data.train_labels
    if limit is None or limit >= len(labels):
        return images, labels
    keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:limit]
    return images[keep], labels[keep]


def _check_same_run(saved: Checkpoint, config: TrainConfig) -> None:
    before = config_to_dict(saved.config)
    clashes = [
        f"{k} ({before.get(k)!r} saved, {v!r} given)"
        for k, v in config_to_dict(config).items()
        if k not in RESUMABLE_FIELDS and before.get(k) != v
    ]
    if clashes:
        raise ConfigError(
            f"cannot resume: these settings differ from the saved run: {', '.join(clashes)}; "
            "drop them or train into a new --out"
        )
    if len(saved.history) > config.epochs:
        raise ConfigError(f"cannot resume to {config.epochs} epoch(s): the checkpoint already has {len(saved.history)}")
