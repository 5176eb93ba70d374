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
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from edgecnn import __version__
from edgecnn.architectures import count_parameters, create, get_arch
from edgecnn.checkpoint import (CHECKPOINT_NAME, capture_rng, load_checkpoint, restore_rng,
                                save_checkpoint)
from edgecnn.config import TrainConfig, config_from_dict, config_to_dict
from edgecnn.data import DatasetBundle, load_dataset
from edgecnn.errors import ConfigError, DeviceError
from edgecnn.files import write_json
from edgecnn.plots import plot_confusion, plot_curves

__all__ = ["TrainResult", "fit", "evaluate", "resume_config", "resolve_device", "RESUMABLE_FIELDS"]

# Fields a resumed run may change; anything else would make the resumed run a different run.
RESUMABLE_FIELDS = ("epochs", "device", "data_root")
StepHook = Callable[[int, int], None]  # (epoch, step) after each optimizer step


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    model: nn.Module
    epochs: list[dict[str, Any]]
    test_accuracy: float
    confusion: list[list[int]]

    def summary(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "test_accuracy": self.test_accuracy,
                "epochs": self.epochs}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda was asked for, but torch sees no CUDA device; use --device cpu or auto")
    return torch.device(name)


def resume_config(out_dir: str | Path, overrides: dict[str, Any]) -> TrainConfig:
    """The config saved in ``out_dir``'s checkpoint with ``overrides`` applied (``fit`` refuses any
    override outside :data:`RESUMABLE_FIELDS` that changes the run)."""
    saved = config_from_dict(TrainConfig, load_checkpoint(Path(out_dir) / CHECKPOINT_NAME)["config"])
    return dataclasses.replace(saved, **overrides)


def fit(config: TrainConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = False,
        data: DatasetBundle | None = None, on_step: StepHook | None = None) -> TrainResult:
    """Train ``config.arch`` and write checkpoint.pt, metrics.json, curves.png, confusion.png."""
    out = Path(out_dir)
    get_arch(config.arch)  # an unknown name fails before minutes of data loading, not after
    device = resolve_device(config.device)
    _seed_everything(config.seed, device)
    data = data or load_dataset(config.dataset, data_root=config.data_root, image_size=config.image_size,
                                test_fraction=config.test_fraction, seed=config.seed)
    train_x, train_y = _limit(data.train_images, data.train_labels, config.limit_train, config.seed)
    channels, height, width = data.input_shape
    model = create(config.arch, num_classes=len(data.class_names), in_channels=channels,
                   input_size=(height, width)).to(device, memory_format=torch.channels_last)
    optimizer = _make_optimizer(config, model)
    shuffle = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, Any]] = []
    step = 0
    if resume:
        state = load_checkpoint(out / CHECKPOINT_NAME)
        _check_same_run(state, config)
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        restore_rng(state["rng"], shuffle)
        history, step = list(state["metrics"]), int(state["step"])
    train_x, train_y = train_x.to(device), train_y.to(device)
    test_x, test_y = data.test_images.to(device), data.test_labels.to(device)
    confusion: list[list[int]] = []
    for epoch in range(len(history) + 1, config.epochs + 1):
        started = time.perf_counter()
        loss, acc, step = _train_epoch(model, optimizer, data, train_x, train_y, shuffle, config,
                                       epoch=epoch, step=step, progress=progress, on_step=on_step)
        train_seconds = time.perf_counter() - started
        test_loss, test_acc, confusion = evaluate(model, data, test_x, test_y)
        history.append({"epoch": epoch, "train_loss": loss, "train_accuracy": acc, "test_loss": test_loss,
                        "test_accuracy": test_acc, "seconds": round(time.perf_counter() - started, 3),
                        "train_seconds": round(train_seconds, 3),
                        "samples_per_s": round(len(train_y) / train_seconds, 1)})
        save_checkpoint(out / CHECKPOINT_NAME, _checkpoint_payload(
            config, data, model, optimizer, shuffle, epoch=epoch, step=step, history=history))
    if not confusion:  # resumed a run that had already finished: recompute for the report
        confusion = evaluate(model, data, test_x, test_y)[2]
    _write_reports(out, config, data, model, history, confusion, device)
    model = model.eval().to(memory_format=torch.contiguous_format)  # channels-last was for training speed
    return TrainResult(out_dir=out, model=model, epochs=history,
                       test_accuracy=history[-1]["test_accuracy"], confusion=confusion)


def _train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, data: DatasetBundle,
                 images: torch.Tensor, labels: torch.Tensor, shuffle: torch.Generator,
                 config: TrainConfig, *, epoch: int, step: int, progress: bool,
                 on_step: StepHook | None) -> tuple[float, float, int]:
    model.train()
    order = torch.randperm(len(labels), generator=shuffle).to(labels.device)
    loss_sum = torch.zeros((), device=labels.device)
    correct = torch.zeros((), dtype=torch.long, device=labels.device)
    batches = range(0, len(labels), config.batch_size)
    bar = tqdm(batches, desc=f"epoch {epoch}/{config.epochs}", unit="batch", disable=not progress,
               leave=False)
    for start in bar:
        idx = order[start:start + config.batch_size]
        x = data.normalize(images[idx]).contiguous(memory_format=torch.channels_last)
        y = labels[idx]
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        loss_sum += loss.detach() * len(y)  # no .item() per step: it would sync a GPU every batch
        correct += (logits.argmax(1) == y).sum()
        if on_step is not None:
            on_step(epoch, step)
    n = len(labels)
    return round(float(loss_sum) / n, 6), round(int(correct) / n, 6), step


@torch.no_grad()
def evaluate(model: nn.Module, data: DatasetBundle, images: torch.Tensor, labels: torch.Tensor,
             *, batch_size: int = 1000) -> tuple[float, float, list[list[int]]]:
    """Mean cross-entropy, accuracy and the confusion matrix (rows true, columns predicted)."""
    model.eval()
    classes = len(data.class_names)
    confusion = torch.zeros(classes, classes, dtype=torch.long)
    loss_sum = 0.0
    for start in range(0, len(labels), batch_size):
        x = data.normalize(images[start:start + batch_size]).contiguous(memory_format=torch.channels_last)
        y = labels[start:start + batch_size]
        logits = model(x)
        loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        confusion += torch.bincount((y * classes + logits.argmax(1)).cpu(),
                                    minlength=classes * classes).view(classes, classes)
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


def _limit(images: torch.Tensor, labels: torch.Tensor, limit: int | None,
           seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    if limit is None or limit >= len(labels):
        return images, labels
    keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:limit]
    return images[keep], labels[keep]


def _check_same_run(state: dict[str, Any], config: TrainConfig) -> None:
    saved = state["config"]
    clashes = [f"{k} ({saved.get(k)!r} saved, {v!r} given)" for k, v in config_to_dict(config).items()
               if k not in RESUMABLE_FIELDS and saved.get(k) != v]
    if clashes:
        raise ConfigError(f"cannot resume: these settings differ from the saved run: {', '.join(clashes)}; "
                          "drop them or train into a new --out")
    if len(state["metrics"]) > config.epochs:
        raise ConfigError(f"cannot resume to {config.epochs} epoch(s): the checkpoint already has "
                          f"{len(state['metrics'])}")


def _checkpoint_payload(config: TrainConfig, data: DatasetBundle, model: nn.Module,
                        optimizer: torch.optim.Optimizer, shuffle: torch.Generator, *, epoch: int,
                        step: int, history: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "edgecnn_version": __version__,
        "arch": config.arch,
        "config": config_to_dict(config),
        "class_names": list(data.class_names),
        "normalization": data.normalization.to_dict(),
        "input_shape": list(data.input_shape),
        "dataset": data.name,
        "epoch": epoch,
        "step": step,
        "model_state": model.state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "rng": capture_rng(shuffle),
        "metrics": history,
    }


def _write_reports(out: Path, config: TrainConfig, data: DatasetBundle, model: nn.Module,
                   history: list[dict[str, Any]], confusion: list[list[int]], device: torch.device) -> None:
    write_json(out / "metrics.json", {
        "arch": config.arch, "dataset": data.name, "parameters": count_parameters(model),
        "device": device.type, "threads": torch.get_num_threads(), "config": config_to_dict(config),
        "epochs": history, "test_accuracy": history[-1]["test_accuracy"],
        "test_loss": history[-1]["test_loss"], "confusion": confusion,
    })
    title = f"{config.arch} on {Path(data.name).name}"
    plot_curves(history, out / "curves.png", title=title)
    plot_confusion(confusion, data.class_names, out / "confusion.png",
                   title=f"{title}: test accuracy {history[-1]['test_accuracy']:.2%}")
