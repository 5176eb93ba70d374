"""The architecture registry and the seed nets of our source tutorials.

A plain dict behind a ``register`` decorator (torchvision's ``models/_api.py``). Every builder is
keyword-only and takes ``num_classes``, ``in_channels`` and ``input_size`` (the flatten size of the
classifier head follows from it). Nets return logits; softmax belongs to the runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from edgecnn.errors import ArchError, describe

__all__ = ["ArchSpec", "register", "list_archs", "get_arch", "create", "count_parameters"]

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ArchSpec:
    name: str
    builder: Builder
    summary: str


_REGISTRY: dict[str, ArchSpec] = {}


def register(name: str, *, summary: str) -> Callable[[Builder], Builder]:
    """Add a builder under ``name``; a second builder with the same name is a programming error."""

    def decorate(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"architecture {name!r} is already registered")
        _REGISTRY[name] = ArchSpec(name=name, builder=builder, summary=summary)
        return builder

    return decorate


def list_archs() -> list[str]:
    """Registered names, in registration order."""
    return list(_REGISTRY)


def get_arch(name: str) -> ArchSpec:
    try:
        return _REGISTRY[name]
    except KeyError as exc:
        raise ArchError(f"unknown architecture {name!r}; choose one of: {', '.join(_REGISTRY)}") from exc


def create(
    name: str, *, num_classes: int = 10, in_channels: int = 1, input_size: tuple[int, int] = (28, 28)
) -> nn.Module:
    """Build a freshly initialised net by registry name."""
    spec = get_arch(name)
    if num_classes < 2 or in_channels < 1:
        raise ArchError(f"{name}: need num_classes ≥ 2 and in_channels ≥ 1 (got {num_classes}, {in_channels})")
    try:
        return spec.builder(num_classes=num_classes, in_channels=in_channels, input_size=tuple(input_size))
    except RuntimeError as exc:  # e.g. an input too small for the net's pooling stages
        raise ArchError(
            f"{name} cannot take {in_channels}×{input_size[0]}×{input_size[1]} input: {describe(exc)}"
        ) from exc


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _flat_size(features: nn.Module, in_channels: int, input_size: tuple[int, int]) -> int:
    """Width of the flattened feature map, found by one shape-only pass (no parameter changes)."""
    was_training = features.training
    features.eval()  # BatchNorm must not update its running stats on the probe
    with torch.no_grad():
        out = features(torch.zeros(1, in_channels, *input_size))
    features.train(was_training)
    return out.numel()


class Classifier(nn.Module):
    """``features`` then ``head``: the shape every seed net shares."""

    def __init__(self, features: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))


def _conv(cin: int, cout: int, k: int, pad: int | str) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=k, padding=pad)


@register("mnist_cnn3", summary="3×(conv3×3 → ReLU → pool → dropout .3), FC 625, dropout .3")
def mnist_cnn3(*, num_classes: int, in_channels: int, input_size: tuple[int, int]) -> nn.Module:
    layers: list[nn.Module] = []
    for i, (cin, cout) in enumerate([(in_channels, 32), (32, 64), (64, 128)]):
        layers += [_conv(cin, cout, 3, 1), nn.ReLU(), nn.MaxPool2d(2, 2, padding=1 if i == 2 else 0), nn.Dropout(0.3)]
    features = nn.Sequential(*layers)
    flat = _flat_size(features, in_channels, input_size)
    head = nn.Sequential(nn.Linear(flat, 625), nn.ReLU(), nn.Dropout(0.3), nn.Linear(625, num_classes))
    return Classifier(features, head)


@register("convnet5", summary="conv5×5 32 → pool → conv5×5 64 → pool, dropout .5, FC 1000")
def convnet5(*, num_classes: int, in_channels: int, input_size: tuple[int, int]) -> nn.Module:
    features = nn.Sequential(
        _conv(in_channels, 32, 5, 2),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
        _conv(32, 64, 5, 2),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
    )
    flat = _flat_size(features, in_channels, input_size)
    head = nn.Sequential(nn.Dropout(0.5), nn.Linear(flat, 1000), nn.Linear(1000, num_classes))
    return Classifier(features, head)


@register("keras_conv2", summary="Keras conv64 → conv32 (valid), dense")
def keras_conv2(*, num_classes: int, in_channels: int, input_size: tuple[int, int]) -> nn.Module:
    features = nn.Sequential(_conv(in_channels, 64, 3, 0), nn.ReLU(), _conv(64, 32, 3, 0), nn.ReLU())
    return Classifier(features, nn.Linear(_flat_size(features, in_channels, input_size), num_classes))


@register("fashion_bn", summary="conv5×5 16 → BN → pool → conv5×5 32 → BN → pool, linear")
def fashion_bn(*, num_classes: int, in_channels: int, input_size: tuple[int, int]) -> nn.Module:
    features = nn.Sequential(
        _conv(in_channels, 16, 5, 2),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        _conv(16, 32, 5, 2),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )
    return Classifier(features, nn.Linear(_flat_size(features, in_channels, input_size), num_classes))


def _keras_stack(in_channels: int, pad: int | str) -> nn.Sequential:
    return nn.Sequential(
        _conv(in_channels, 32, 3, pad),
        nn.ReLU(),
        nn.MaxPool2d(2),
        _conv(32, 64, 3, pad),
        nn.ReLU(),
        nn.MaxPool2d(2),
        _conv(64, 64, 3, pad),
        nn.ReLU(),
    )


def _dense64(flat: int, num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Linear(flat, 64), nn.ReLU(), nn.Linear(64, num_classes))


@register("keras_same", summary="Keras conv32-64-64 'same', dense 64")
def keras_same(*, num_classes: int, in_channels: int, input_size: tuple[int, int]) -> nn.Module:
    # padding=1 is Keras "same" for odd 3×3 kernels and exports as a plain Conv pad attribute.
    features = _keras_stack(in_channels, 1)
    return Classifier(features, _dense64(_flat_size(features, in_channels, input_size), num_classes))


@register("keras_valid", summary="Keras conv32-64-64 'valid', dense 64")
def keras_valid(*, num_classes: int, in_channels: int, input_size: tuple[int, int]) -> nn.Module:
    features = _keras_stack(in_channels, 0)
    return Classifier(features, _dense64(_flat_size(features, in_channels, input_size), num_classes))


@register("tiny", summary="a ~4k-parameter net for tests and smoke runs")
def tiny(*, num_classes: int, in_channels: int, input_size: tuple[int, int]) -> nn.Module:
    features = nn.Sequential(
        _conv(in_channels, 4, 3, 1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        _conv(4, 8, 3, 1),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )
    return Classifier(features, nn.Linear(_flat_size(features, in_channels, input_size), num_classes))
