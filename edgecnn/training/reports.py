"""What a finished run writes beside its checkpoint: metrics.json, curves.png, confusion.png."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgecnn.config import TrainConfig, config_to_dict
from edgecnn.files import CONFUSION_NAME, CURVES_NAME, METRICS_NAME, write_json
from edgecnn.plots import plot_confusion, plot_curves
from edgecnn.training.architectures import count_parameters
from edgecnn.training.data import DatasetBundle

__all__ = ["write_reports"]


def write_reports(
    out: Path,
    config: TrainConfig,
    data: DatasetBundle,
    model: nn.Module,
    history: list[dict[str, Any]],
    metrics: Mapping[str, float],
    confusion: list[list[int]],
    device: torch.device,
    unreadable: Sequence[tuple[str, str]] = (),
) -> None:
    """``metrics`` are the card's: the chosen epoch's validation figures and the test set's, measured once;
    ``unreadable``: the image folder's files left out (at its scan or mid-run) and why."""
    write_json(
        out / METRICS_NAME,
        {
            "arch": config.arch,
            "dataset": data.name,
            "parameters": count_parameters(model),
            "device": device.type,
            "threads": torch.get_num_threads(),
            "config": config_to_dict(config),
            "epochs": history,
            "best_epoch": int(metrics["best_epoch"]),
            **{k: metrics[k] for k in ("val_accuracy", "val_loss", "test_accuracy", "test_loss") if k in metrics},
            "confusion": confusion,
            "unreadable_images": {"count": len(unreadable), "files": [{"path": p, "error": e} for p, e in unreadable]},
            "images_read_from_disk": not isinstance(data.train_images, torch.Tensor),  # over --max-memory-gb
        },
    )
    title = f"{config.arch} on {Path(data.name).name}"
    plot_curves(history, out / CURVES_NAME, title=title)
    plot_confusion(
        confusion,
        data.class_names,
        out / CONFUSION_NAME,
        title=f"{title}: test accuracy {metrics['test_accuracy']:.2%} (epoch {int(metrics['best_epoch'])})",
    )
