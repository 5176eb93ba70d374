"""Loss, accuracy and the confusion matrix of a net on labelled images — in several processes, each rank
measures its share (every world-th image) and the sums are all-reduced, so every rank gets the same figures."""

from __future__ import annotations

import torch
from torch import nn

from edgecnn.training.batches import Unreadable, batch_workers, load_batches
from edgecnn.training.data import DatasetBundle
from edgecnn.training.distributed import ONE_PROCESS, Dist, all_reduce_sum
from edgecnn.training.scan import FolderImages

__all__ = ["evaluate"]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: DatasetBundle,
    images: torch.Tensor | FolderImages,
    labels: torch.Tensor,
    *,
    batch_size: int = 1000,
    dist: Dist = ONE_PROCESS,
    workers: int | None = None,
    unreadable: Unreadable | None = None,
) -> tuple[float, float, list[list[int]]]:
    """Mean cross-entropy, accuracy and the confusion matrix (rows true, columns predicted) of the images read."""
    model.eval()
    classes = len(data.class_names)
    share = dist.shard(torch.arange(len(labels), device=labels.device))
    batches = [share[start : start + batch_size] for start in range(0, len(share), batch_size)]
    confusion = torch.zeros(classes, classes, dtype=torch.long)
    loss_sum = torch.zeros((), dtype=torch.float64)
    device = labels.device
    workers = batch_workers(workers, device)
    for pixels, y in load_batches(images, labels, batches, device=device, workers=workers, unreadable=unreadable):
        x = data.normalize(pixels).contiguous(memory_format=torch.channels_last)
        logits = model(x)
        loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        confusion += torch.bincount((y * classes + logits.argmax(1)).cpu(), minlength=classes * classes).view(
            classes, classes
        )
    all_reduce_sum(loss_sum, dist)
    all_reduce_sum(confusion, dist)
    n = max(1, int(confusion.sum()))
    return round(float(loss_sum) / n, 6), round(int(confusion.trace()) / n, 6), confusion.tolist()
