"""fit / evaluate / checkpoint / resume. No click, no argparse: callers pass a :class:`TrainConfig`.

Speed comes from choices measured against the tutorials' loop (tools/bench_train.py): the data sits in memory
as one uint8 tensor (no per-item PIL decode; a folder over the memory budget is read by DataLoader workers,
batches.py), the net and its input use channels-last memory, and Adam/SGD use their fused kernels.

Model selection: a validation split carved from the training set (``val_size``) picks the epoch that is
kept and stops the run early (``patience``). The test set is used once, after training, for the final
figure: it never reaches a choice.

Determinism: every RNG the run touches is seeded from ``config.seed`` and saved in each checkpoint, and the
learning rate is a function of the step, so ``resume`` continues exactly where an uninterrupted run would be.
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
from edgecnn.training.batches import batch_workers, load_batches
from edgecnn.training.checkpoint import Checkpoint, load_checkpoint, load_weights, restore_rng, save_checkpoint
from edgecnn.training.data import DatasetBundle, load_dataset_for, split_for_training
from edgecnn.training.distributed import Dist, all_reduce_sum, from_env, gather_objects, process_group, wrap_model
from edgecnn.training.evaluate import evaluate
from edgecnn.training.init import apply_initial_weights, load_initial_weights
from edgecnn.training.reports import write_reports
from edgecnn.training.schedule import lr_at, make_optimizer, set_lr
from edgecnn.training.state import RunState

logger = logging.getLogger(__name__)

__all__ = ["TrainResult", "fit", "evaluate", "resume_config", "resolve_device", "RESUMABLE_FIELDS"]

# Fields a resumed run may change; anything else would make the resumed run a different run.
RESUMABLE_FIELDS = ("epochs", "device", "data_root", "checkpoint_every", "dist_timeout", "max_memory_gb", "workers")
StepHook = Callable[[int, int], None]  # (epoch, step) after each optimizer step
RANK_STRIDE = 1_000_003  # rank r's augmentation and dropout seeds: seed + r × this (a prime: no rank shares one)


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    model: nn.Module  # the chosen epoch's weights, in eval mode
    card: ModelCard
    epochs: list[dict[str, Any]]
    best_epoch: int
    test_accuracy: float
    confusion: list[list[int]]
    unreadable: tuple[tuple[str, str], ...] = ()  # an image folder's files left out, and why

    def summary(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "best_epoch": self.best_epoch,
            "val_accuracy": self.card.metrics.get("val_accuracy"),
            "test_accuracy": self.test_accuracy,
            "unreadable_images": len(self.unreadable),
            "epochs": self.epochs,
        }


def resolve_device(name: str, dist: Dist | None = None) -> torch.device:
    """The torch device; with several processes on GPUs, this process's own (its local rank)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda was asked for, but torch sees no CUDA device; use --device cpu or auto")
    return torch.device("cuda", dist.local_rank) if name == "cuda" and dist and dist.active else torch.device(name)


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
    """Train ``config.arch`` and write checkpoint.pt, metrics.json, curves.png, confusion.png. Under torchrun,
    in each process: the same math on a share of every batch, and only rank 0 writes (distributed.py)."""
    out, dist = Path(out_dir), from_env()
    with process_group(dist, resolve_device(config.device, dist), config.dist_timeout):
        run = _start(config, data, dist, init=not resume)  # a resumed run takes its weights from its checkpoint
        if resume:
            _restore(run, load_checkpoint(out / CHECKPOINT_NAME))
        train, val = split_for_training(run.data, config, run.device)
        if 0 < len(train[1]) % config.batch_size < dist.world:
            raise ConfigError(f"the last batch ({len(train[1]) % config.batch_size} images) leaves a process empty")
        run.total_steps = config.epochs * math.ceil(len(train[1]) / config.batch_size)

        def save() -> None:
            checkpoint = run.checkpoint()  # every rank: their RNG states are gathered into it
            if dist.is_main:
                save_checkpoint(out / CHECKPOINT_NAME, checkpoint)

        while run.should_continue():
            _run_epoch(run, train, val, len(run.history) + 1, progress and dist.is_main, on_step, save)
            save()
        model, confusion = _test_once(run)
        save()
        unreadable = [*run.data.skipped, *sum(gather_objects(run.unreadable, dist), [])]
    if dist.is_main:
        write_reports(out, config, run.data, model, run.history, run.card().metrics, confusion, run.device, unreadable)
    card, accuracy = run.card(), run.test["test_accuracy"]
    return TrainResult(out, model, card, run.history, run.best_epoch, accuracy, confusion, tuple(unreadable))


def _test_once(run: RunState) -> tuple[nn.Module, list[list[int]]]:
    """The chosen weights, measured on the test set: the figure the card reports, after every choice."""
    model = copy.deepcopy(run.model)
    load_weights(model, run.best_state, what=f"the chosen weights of {run.config.arch}")
    test_x, test_y = run.data.test_images.to(run.device), run.data.test_labels.to(run.device)
    loss, accuracy, confusion = evaluate(model, run.data, test_x, test_y, **run.reading)
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
        record["val_loss"], record["val_accuracy"], _ = evaluate(run.model, run.data, *val, **run.reading)
    record["seconds"] = round(time.perf_counter() - started, 3)
    record["train_seconds"] = round(train_seconds, 3)
    record["samples_per_s"] = round(len(train[1]) / train_seconds, 1)
    run.history.append(record)
    run.keep_if_best()


def _start(config: TrainConfig, data: DatasetBundle | None, dist: Dist, *, init: bool = True) -> RunState:
    get_arch(config.arch)  # an unknown name fails before minutes of data loading, not after
    if config.batch_size % dist.world:
        raise ConfigError(
            f"--batch-size {config.batch_size} is the global batch: it must divide among {dist.world} processes"
        )
    device = resolve_device(config.device, dist)
    _seed_everything(config.seed, device)
    data = data or load_dataset_for(config)
    channels, height, width = data.input_shape
    model = create(config.arch, num_classes=len(data.class_names), in_channels=channels, input_size=(height, width))
    if init and config.init is not None:
        fresh = apply_initial_weights(model, load_initial_weights(config.init, config.arch), source=config.init)
        if fresh:
            logger.info("--init %s: a new %d-class head (%s)", config.init, len(data.class_names), ", ".join(fresh))
    model = model.to(device, memory_format=torch.channels_last)
    optimizer = make_optimizer(config, model)
    net = wrap_model(model, device, dist, sync_batchnorm=not config.local_batchnorm)
    if dist.active:  # the same initial weights everywhere (above), then each rank its own dropout masks
        torch.manual_seed(config.seed + RANK_STRIDE * dist.rank)
    augment = torch.Generator().manual_seed(config.seed + 1 + RANK_STRIDE * dist.rank)  # each rank its own draws
    shuffle = torch.Generator().manual_seed(config.seed)  # every rank the same order
    workers = batch_workers(config.workers, device)
    return RunState(config, data, device, model, optimizer, shuffle, augment, dist=dist, net=net, workers=workers)


def _restore(run: RunState, saved: Checkpoint) -> None:
    _check_same_run(saved, run.config)
    load_weights(run.model, saved.model_state, what=f"the checkpoint's chosen weights for {saved.card.arch}")
    load_weights(run.model, saved.last_state, what=f"the checkpoint's last weights for {saved.card.arch}")
    load_weights(run.optimizer, saved.optimizer_state, what="the checkpoint's optimizer state")
    ranks = saved.rng.get("ranks", [saved.rng])  # several processes: each rank's own states
    if len(ranks) != run.dist.world:
        raise ConfigError(
            f"the checkpoint was written by {len(ranks)} process(es): resume with as many, not {run.dist.world}"
        )
    try:
        restore_rng(ranks[run.dist.rank], run.shuffle, run.augment)
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
    model, optimizer, config, dist = run.net or run.model, run.optimizer, run.config, run.dist
    model.train()
    order, drawn_from, done, loss_sum, correct = run.epoch_order(len(labels), labels.device)
    starts = range(done * config.batch_size, len(labels), config.batch_size)
    shares = [dist.shard(order[start : start + config.batch_size]) for start in starts]  # this rank's share of each
    read = load_batches(images, labels, shares, device=run.device, workers=run.workers, unreadable=run.unreadable)
    shown = tqdm(
        read, total=len(starts), desc=f"epoch {epoch}/{config.epochs}", unit="batch", disable=not progress, leave=False
    )
    for start, (pixels, y) in zip(starts, shown, strict=True):
        batch = order[start : start + config.batch_size]
        x = augment_batch(pixels, config.augment, run.augment)
        x = run.data.normalize(x).contiguous(memory_format=torch.channels_last)
        logits = model(x)
        loss = _loss(logits, y, len(batch), run)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        set_lr(optimizer, lr_at(config, run.step, run.total_steps))
        optimizer.step()
        run.step += 1
        loss_sum += loss.detach() * len(batch) / dist.world  # no .item() per step: it would sync a GPU
        correct += (logits.argmax(1) == y).sum()
        if config.checkpoint_every and run.step % config.checkpoint_every == 0 and start + len(batch) < len(labels):
            position = {"batches": start // config.batch_size + 1, "shuffle": drawn_from}
            _save_mid_epoch(run, position, loss_sum, correct, save)
        if on_step is not None:
            on_step(epoch, run.step)
    loss_sum, correct = all_reduce_sum(loss_sum, dist), all_reduce_sum(correct, dist)
    return round(float(loss_sum) / len(labels), 6), round(int(correct) / len(labels), 6)


def _save_mid_epoch(
    run: RunState, position: dict[str, Any], loss_sum: torch.Tensor, correct: torch.Tensor, save: Callable[[], None]
) -> None:
    """A checkpoint a killed run resumes from exactly: where the epoch is, and its running sums (all-reduced)."""
    sums = [all_reduce_sum(t.detach().clone(), run.dist).cpu() for t in (loss_sum, correct)]  # rank 0 holds them
    run.position = {**position, "loss_sum": sums[0], "correct": sums[1]}
    save()
    run.position = None


def _loss(logits: torch.Tensor, y: torch.Tensor, batch: int, run: RunState) -> torch.Tensor:
    """The batch's mean cross-entropy; in several processes, this rank's summed share × world / batch, so that
    DDP's mean of the ranks' gradients is the global batch's mean's gradient, also for an uneven last batch."""
    smoothing = run.config.label_smoothing
    if not run.dist.active:
        return nn.functional.cross_entropy(logits, y, label_smoothing=smoothing)
    summed = nn.functional.cross_entropy(logits, y, label_smoothing=smoothing, reduction="sum")
    return summed * run.dist.world / batch


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
