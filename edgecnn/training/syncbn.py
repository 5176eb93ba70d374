"""BatchNorm whose batch statistics are those of the global batch, across processes, on the CPU too.

torch's ``nn.SyncBatchNorm`` runs on GPUs only; on CUDA it is used as it is. Elsewhere (gloo on CPUs) this
module does the same arithmetic: each rank's per-channel sum, sum of squares and count are all-reduced with
autograd (:class:`_AllReduceSum`: the backward pass all-reduces the gradients, as torch's deprecated
``torch.distributed.nn.functional.all_reduce`` did, without its warning on every run), the
global mean and biased variance normalise, and the running statistics take the unbiased variance, as
BatchNorm does. Computed from sums in float64, so it matches one process's BatchNorm on the same global batch
to float32 rounding.
"""

from __future__ import annotations

import torch
import torch.distributed as torch_dist
from torch import nn

__all__ = ["GlobalBatchNorm", "convert_batchnorm"]


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and torch_dist.is_available() and torch_dist.is_initialized()):
            return super().forward(x)
        channels, dims = x.shape[1], [d for d in range(x.dim()) if d != 1]
        wide = x.double()
        count = torch.tensor([x.numel() / max(channels, 1)], dtype=torch.float64)
        stats = _AllReduceSum.apply(torch.cat([wide.sum(dims), (wide * wide).sum(dims), count]))
        n = stats[-1]
        mean = stats[:channels] / n
        var = stats[channels : 2 * channels] / n - mean * mean
        with torch.no_grad():
            if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(m * mean.to(self.running_mean.dtype))
                unbiased = var * n / torch.clamp(n - 1, min=1)
                self.running_var.mul_(1 - m).add_(m * unbiased.to(self.running_var.dtype))
                self.num_batches_tracked.add_(1)
        shape = [1, channels] + [1] * (x.dim() - 2)
        y = (wide - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.double().view(shape) + self.bias.double().view(shape)
        return y.to(x.dtype)


class _AllReduceSum(torch.autograd.Function):
    """Sum over the ranks; its gradient is the sum of the ranks' gradients (every rank used the sum)."""

    @staticmethod
    def forward(ctx: object, tensor: torch.Tensor) -> torch.Tensor:
        summed = tensor.clone()
        torch_dist.all_reduce(summed)
        return summed

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        summed = grad.clone()
        torch_dist.all_reduce(summed)
        return summed


def convert_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm in ``module`` made global: torch's SyncBatchNorm on CUDA, GlobalBatchNorm elsewhere.
    The parameters are the same objects (an optimizer built before keeps them); the buffers are copied."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, GlobalBatchNorm):
            replacement = GlobalBatchNorm(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            if child.affine:
                replacement.weight, replacement.bias = child.weight, child.bias
            if child.track_running_stats:
                replacement.running_mean, replacement.running_var = child.running_mean, child.running_var
                replacement.num_batches_tracked = child.num_batches_tracked
            replacement.train(child.training)
            setattr(module, name, replacement)
        else:
            convert_batchnorm(child, device)
    return module
