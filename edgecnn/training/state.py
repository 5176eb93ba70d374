"""The state of one training run while it runs, and what it makes of it: the card and the checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from edgecnn import __version__
from edgecnn.card import Lineage, ModelCard, config_hash
from edgecnn.config import TrainConfig, config_to_dict
from edgecnn.training.checkpoint import Checkpoint, capture_rng
from edgecnn.training.data import DatasetBundle
from edgecnn.training.distributed import ONE_PROCESS, Dist, gather_objects

__all__ = ["RunState"]


@dataclass
class RunState:
    """What one training run holds while it runs."""

    config: TrainConfig
    data: DatasetBundle
    device: torch.device
    model: nn.Module
    optimizer: torch.optim.Optimizer
    shuffle: torch.Generator
    augment: torch.Generator
    history: list[dict[str, Any]] = field(default_factory=list)
    step: int = 0
    total_steps: int = 0
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)  # set once, after training
    position: dict[str, Any] | None = None  # mid-epoch: where the unfinished epoch is (see checkpoint.py)
    dist: Dist = ONE_PROCESS  # this process's rank among the run's processes
    net: nn.Module | None = None  # what forward runs through: the model, or DDP around it
    workers: int = 0  # DataLoader workers reading an image folder left on disk (folders.py)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # files that failed mid-run (batches.py)

    @property
    def reading(self) -> dict[str, Any]:
        """evaluate()'s settings for this run: its processes, its workers, where unreadable files are counted."""
        return {"dist": self.dist, "workers": self.workers, "unreadable": self.unreadable}

    def card(self) -> ModelCard:
        chosen = self.history[self.best_epoch - 1] if self.best_epoch else {}
        metrics = {k: float(chosen[k]) for k in ("val_accuracy", "val_loss") if k in chosen}
        return ModelCard(
            arch=self.config.arch,
            class_names=self.data.class_names,
            input_shape=self.data.input_shape,
            normalization=self.data.normalization,
            dataset=self.data.name,
            metrics={**metrics, **self.test, "epochs": float(len(self.history)), "best_epoch": float(self.best_epoch)},
            lineage=Lineage(config_hash(config_to_dict(self.config)), self.data.checksum(), __version__),
        )

    def checkpoint(self) -> Checkpoint:
        last = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        return Checkpoint(
            card=self.card(),
            config=self.config,
            epoch=len(self.history),
            step=self.step,
            model_state=self.best_state or last,
            best_epoch=self.best_epoch,
            last_state=last,
            optimizer_state=self.optimizer.state_dict(),
            rng=self._rng(),
            history=tuple(self.history),
            position=self.position,
        )

    def _rng(self) -> dict[str, Any]:
        """This rank's RNG states; in several processes, rank 0's plus every rank's under "ranks" (a
        collective: every rank calls it at the same step)."""
        rng = capture_rng(self.shuffle, self.augment)
        return {**rng, "ranks": gather_objects(rng, self.dist)} if self.dist.active else rng

    def keep_if_best(self) -> None:
        """After an epoch: remember its weights when it is the best so far on validation (accuracy, then
        loss); without a validation split every epoch is the best so far."""
        last = self.history[-1]
        if "val_accuracy" in last and self.best_epoch:
            best = self.history[self.best_epoch - 1]
            if (last["val_accuracy"], -last["val_loss"]) <= (best["val_accuracy"], -best["val_loss"]):
                return
        self.best_epoch = last["epoch"]
        self.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

    def epoch_order(
        self, count: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor, int, torch.Tensor, torch.Tensor]:
        """The epoch's order (and the shuffle state it is drawn from), the batches already done and the running
        loss and correct sums: fresh, or — resuming mid-epoch — the same order drawn again and the saved sums."""
        resumed, self.position = self.position, None
        if resumed is not None:
            self.shuffle.set_state(resumed["shuffle"])
        drawn_from = self.shuffle.get_state()
        order = torch.randperm(count, generator=self.shuffle).to(device)
        loss_sum, correct = torch.zeros((), device=device), torch.zeros((), dtype=torch.long, device=device)
        if resumed is None:
            return order, drawn_from, 0, loss_sum, correct
        if self.dist.is_main:  # the saved sums are every rank's, all-reduced: rank 0 carries them on
            loss_sum, correct = resumed["loss_sum"].to(device), resumed["correct"].to(device)
        return order, drawn_from, resumed["batches"], loss_sum, correct

    def should_continue(self) -> bool:
        done = len(self.history)
        stalled = self.config.patience and self.best_epoch and done - self.best_epoch >= self.config.patience
        return done < self.config.epochs and not stalled
