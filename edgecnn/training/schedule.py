"""The optimizer and the learning rate over a run.

The rate is a pure function of the global step (:func:`lr_at`), set on the optimizer before each step, so
a resumed run needs no scheduler state: the step count in the checkpoint is enough, and a run resumed
mid-schedule takes exactly the steps an uninterrupted one would. (Extending ``--epochs`` on resume
stretches a cosine or one-cycle schedule over the new total.)
"""

from __future__ import annotations

import math

import torch
from torch import nn

from edgecnn.config import TrainConfig

__all__ = ["make_optimizer", "lr_at", "set_lr"]

_ONECYCLE_WARMUP = 0.3  # torch's OneCycleLR pct_start
_ONECYCLE_START = 25.0  # … div_factor: the first step runs at lr / 25
_ONECYCLE_END = 1e4  # … final_div_factor: the last at lr / 25 / 1e4


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params, lr, wd = model.parameters(), config.lr, config.weight_decay
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, fused=True)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd, fused=True)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=wd, fused=True)
    return torch.optim.RMSprop(params, lr=lr, momentum=config.momentum, weight_decay=wd)


def lr_at(config: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate of optimizer step ``step`` (0-based) of ``total_steps``."""
    peak, total = config.lr, max(1, total_steps)
    warmup = round(config.warmup_epochs * total / config.epochs)
    if config.schedule == "onecycle":
        warmup = warmup or round(_ONECYCLE_WARMUP * total)
        start, end = peak / _ONECYCLE_START, peak / _ONECYCLE_START / _ONECYCLE_END
        if step < warmup:
            return _cosine(start, peak, step / warmup)
        return _cosine(peak, end, (step - warmup) / max(1, total - 1 - warmup))
    if step < warmup:
        return peak * (step + 1) / warmup
    if config.schedule == "cosine":
        return _cosine(peak, 0.0, (step - warmup) / max(1, total - warmup))
    return peak


def _cosine(start: float, end: float, fraction: float) -> float:
    fraction = min(1.0, max(0.0, fraction))
    return end + (start - end) * (1 + math.cos(math.pi * fraction)) / 2


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr  # a float, not a tensor: the fused kernels take either, a checkpoint keeps it plain
