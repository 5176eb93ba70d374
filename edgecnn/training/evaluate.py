"""Loss, accuracy and the confusion matrix of a net on labelled images — in several processes, each rank
measures its share (every world-th image) and the sums are all-reduced, so every rank gets the same figures."""

from __future__ import annotations

import torch
from torch import nn

from edgecnn.training.data import DatasetBundle
from edgecnn.training.distributed import ONE_PROCESS, Dist, all_reduce_sum

__all__ = ["evaluate"]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: DatasetBundle,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int = 1000,
    dist: Dist = ONE_PROCESS,
) -> tuple[float, float, list[list[int]]]:
    """Mean cross-entropy, accuracy and the confusion matrix (rows true, columns predicted)."""
    model.eval()
    classes, n = len(data.class_names), len(labels)
    images, labels = dist.shard(images), dist.shard(labels)
    confusion = torch.zeros(classes, classes, dtype=torch.long)
    loss_sum = torch.zeros((), dtype=torch.float64)
    for start in range(0, len(labels), batch_size):
        x = data.normalize(images[start : start + batch_size]).contiguous(memory_format=torch.channels_last)
        y = labels[start : start + batch_size]
        logits = model(x)
        loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        confusion += torch.bincount((y * classes + logits.argmax(1)).cpu(), minlength=classes * classes).view(
            classes, classes
        )
    all_reduce_sum(loss_sum, dist)
    all_reduce_sum(confusion, dist)
    return round(float(loss_sum) / n, 6), round(int(confusion.trace()) / n, 6), confusion.tolist()
