"""fit / evaluate / checkpoint / resume. No click, no argparse: callers pass a :class:`TrainConfig`.

Speed comes from three choices measured against the tutorials' loop (tools/bench_train.py): the data
sits in memory as one uint8 tensor (no per-item PIL decode), the net and its input use channels-last
memory (faster oneDNN convolutions), and Adam/SGD use their fused kernels.

Model selection: a validation split carved from the training set (``val_size``) picks the epoch that is
kept and stops the run early (``patience``). The test set is used once, after training, for the final
figure: it never reaches a choice.

Determinism: every RNG the run touches (torch's global one for init and dropout, a dedicated shuffle
generator, the augmentation's, numpy's and Python's) is seeded from ``config.seed`` and saved in each
epoch's checkpoint, and the learning rate is a function of the step, so ``resume`` continues exactly where
an uninterrupted run would be.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
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

from edgecnn.card import ModelCard
from edgecnn.config import TrainConfig, config_to_dict
from edgecnn.errors import ConfigError, DeviceError, ModelFileError, TrainingError, describe
from edgecnn.files import CHECKPOINT_NAME
from edgecnn.training.architectures import create, get_arch
from edgecnn.training.augment import augment_batch
from edgecnn.training.checkpoint import Checkpoint, load_checkpoint, load_weights, restore_rng, save_checkpoint
from edgecnn.training.data import DatasetBundle, load_dataset_for, split_validation
from edgecnn.training.init import apply_initial_weights, load_initial_weights
from edgecnn.training.reports import write_reports
from edgecnn.training.schedule import lr_at, make_optimizer, set_lr
from edgecnn.training.state import RunState

logger = logging.getLogger(__name__)

__all__ = ["TrainResult", "fit", "evaluate", "resume_config", "resolve_device", "RESUMABLE_FIELDS"]

# Fields a resumed run may change; anything else would make the resumed run a different run.
RESUMABLE_FIELDS = ("epochs", "device", "data_root", "checkpoint_every")
StepHook = Callable[[int, int], None]  # (epoch, step) after each optimizer step


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    model: nn.Module  # the chosen epoch's weights, in eval mode
    card: ModelCard
    epochs: list[dict[str, Any]]
    best_epoch: int
    test_accuracy: float
    confusion: list[list[int]]

    def summary(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "best_epoch": self.best_epoch,
            "val_accuracy": self.card.metrics.get("val_accuracy"),
            "test_accuracy": self.test_accuracy,
            "epochs": self.epochs,
        }


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
    run = _start(config, data, init=not resume)  # a resumed run takes its weights from its checkpoint
    if resume:
        _restore(run, load_checkpoint(out / CHECKPOINT_NAME))
    train, val = _split(run.data, config, run.device)
    run.total_steps = config.epochs * math.ceil(len(train[1]) / config.batch_size)

    def save() -> None:
        save_checkpoint(out / CHECKPOINT_NAME, run.checkpoint())

    while run.should_continue():
        _run_epoch(run, train, val, len(run.history) + 1, progress, on_step, save)
        save()
    model, confusion = _test_once(run)
    save_checkpoint(out / CHECKPOINT_NAME, run.checkpoint())
    write_reports(out, config, run.data, model, run.history, run.card().metrics, confusion, run.device)
    card = run.card()
    return TrainResult(out, model, card, run.history, run.best_epoch, run.test["test_accuracy"], confusion)


def _split(
    data: DatasetBundle, config: TrainConfig, device: torch.device
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """(training images, labels) and (validation images, labels) on ``device``: the validation split
    first, from the whole training set, then ``limit_train``'s subset of what is left."""
    train_idx, val_idx = split_validation(data.train_labels, config.val_size, config.seed)
    if config.limit_train is not None and config.limit_train < len(train_idx):
        keep = torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(config.seed))
        train_idx = train_idx[keep[: config.limit_train]].sort().values
    images, labels = data.train_images, data.train_labels
    return (
        (images[train_idx].to(device), labels[train_idx].to(device)),
        (images[val_idx].to(device), labels[val_idx].to(device)),
    )


def _test_once(run: RunState) -> tuple[nn.Module, list[list[int]]]:
    """The chosen weights, measured on the test set: the figure the card reports, after every choice."""
    model = copy.deepcopy(run.model)
    load_weights(model, run.best_state, what=f"the chosen weights of {run.config.arch}")
    test_x, test_y = run.data.test_images.to(run.device), run.data.test_labels.to(run.device)
    loss, accuracy, confusion = evaluate(model, run.data, test_x, test_y)
    run.test = {"test_loss": loss, "test_accuracy": accuracy}
    return model.eval().to(memory_format=torch.contiguous_format), confusion  # channels-last was for speed


def _run_epoch(
    run: RunState,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    epoch: int,
    progress: bool,
    on_step: StepHook | None,
    save: Callable[[], None],
) -> None:
    """Train one epoch, validate, append the epoch's figures to the history, keep it if it is the best."""
    started = time.perf_counter()
    loss, acc = _train_epoch(run, *train, epoch=epoch, progress=progress, on_step=on_step, save=save)
    train_seconds = time.perf_counter() - started
    if not math.isfinite(loss):
        kept = f"the checkpoint of epoch {epoch - 1} is kept" if epoch > 1 else "no checkpoint was written"
        raise TrainingError(
            f"training diverged in epoch {epoch}: the loss became {loss} (lr {run.config.lr:g} is "
            f"likely too high for {run.config.optimizer}); {kept}"
        )
    record = {"epoch": epoch, "train_loss": loss, "train_accuracy": acc, "lr": run.optimizer.param_groups[0]["lr"]}
    if len(val[1]):
        record["val_loss"], record["val_accuracy"], _ = evaluate(run.model, run.data, *val)
    record["seconds"] = round(time.perf_counter() - started, 3)
    record["train_seconds"] = round(train_seconds, 3)
    record["samples_per_s"] = round(len(train[1]) / train_seconds, 1)
    run.history.append(record)
    run.keep_if_best()


def _start(config: TrainConfig, data: DatasetBundle | None, *, init: bool = True) -> RunState:
    get_arch(config.arch)  # an unknown name fails before minutes of data loading, not after
    device = resolve_device(config.device)
    _seed_everything(config.seed, device)
    data = data or load_dataset_for(config)
    channels, height, width = data.input_shape
    model = create(config.arch, num_classes=len(data.class_names), in_channels=channels, input_size=(height, width))
    if init and config.init is not None:
        fresh = apply_initial_weights(model, load_initial_weights(config.init, config.arch), source=config.init)
        if fresh:
            logger.info("--init %s: a new %d-class head (%s)", config.init, len(data.class_names), ", ".join(fresh))
    model = model.to(device, memory_format=torch.channels_last)
    return RunState(
        config=config,
        data=data,
        device=device,
        model=model,
        optimizer=make_optimizer(config, model),
        shuffle=torch.Generator().manual_seed(config.seed),
        augment=torch.Generator().manual_seed(config.seed + 1),
    )


def _restore(run: RunState, saved: Checkpoint) -> None:
    _check_same_run(saved, run.config)
    load_weights(run.model, saved.model_state, what=f"the checkpoint's chosen weights for {saved.card.arch}")
    load_weights(run.model, saved.last_state, what=f"the checkpoint's last weights for {saved.card.arch}")
    load_weights(run.optimizer, saved.optimizer_state, what="the checkpoint's optimizer state")
    try:
        restore_rng(saved.rng, run.shuffle, run.augment)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise ModelFileError(f"the checkpoint's RNG state cannot be restored ({describe(exc)})") from exc
    run.history, run.step, run.position = list(saved.history), saved.step, saved.position
    run.best_epoch, run.best_state = saved.best_epoch, dict(saved.model_state)


def _train_epoch(
    run: RunState,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epoch: int,
    progress: bool,
    on_step: StepHook | None,
    save: Callable[[], None],
) -> tuple[float, float]:
    model, optimizer, config = run.model, run.optimizer, run.config
    model.train()
    order, drawn_from, done, loss_sum, correct = run.epoch_order(len(labels), labels.device)
    batches = range(done * config.batch_size, len(labels), config.batch_size)
    for start in tqdm(batches, desc=f"epoch {epoch}/{config.epochs}", unit="batch", disable=not progress, leave=False):
        idx = order[start : start + config.batch_size]
        x = augment_batch(images[idx], config.augment, run.augment)
        x = run.data.normalize(x).contiguous(memory_format=torch.channels_last)
        y = labels[idx]
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        set_lr(optimizer, lr_at(config, run.step, run.total_steps))
        optimizer.step()
        run.step += 1
        loss_sum += loss.detach() * len(y)  # no .item() per step: it would sync a GPU every batch
        correct += (logits.argmax(1) == y).sum()
        if config.checkpoint_every and run.step % config.checkpoint_every == 0 and start + len(y) < len(labels):
            run.position = {"batches": start // config.batch_size + 1, "shuffle": drawn_from}
            run.position |= {"loss_sum": loss_sum.detach().cpu().clone(), "correct": correct.cpu().clone()}
            save()  # mid-epoch: a killed run resumes from here exactly
            run.position = None
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


def _seed_everything(seed: int, device: torch.device) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


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
