"""Datasets: MNIST, Fashion-MNIST and a user's image folder, held in memory as uint8 tensors.

MNIST-sized sets fit in memory many times over, so instead of decoding one PIL image per item through a
DataLoader (the tutorials' loop) we decode once through torchvision and slice batches from a tensor.
Images stay uint8 (N×C×H×W); :meth:`DatasetBundle.normalize` turns a batch into the model's float input
with exactly ``ToTensor`` + ``Normalize`` arithmetic.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from edgecnn.card import Normalization
from edgecnn.config import TrainConfig, resolve_data_root
from edgecnn.errors import DataError, describe

__all__ = [
    "Normalization",
    "DatasetBundle",
    "load_dataset",
    "split_for_training",
    "load_dataset_for",
    "resolve_data_root",
    "BUILTIN_DATASETS",
    "split_validation",
]

BUILTIN_DATASETS = ("mnist", "fashion-mnist")
# A dataset path comes from the user, or from a checkpoint (which anyone may have written): never walk these.
_SYSTEM_DIRS = ("/proc", "/sys", "/dev", "/run", "/etc", "/boot")


# The tutorials' constants: the training sets' pixel mean and std.
_BUILTIN_NORMALIZATION = {
    "mnist": Normalization((0.1307,), (0.3081,)),
    "fashion-mnist": Normalization((0.2860,), (0.3530,)),
}


@dataclass(frozen=True)
class DatasetBundle:
    name: str
    train_images: torch.Tensor  # uint8, N×C×H×W
    train_labels: torch.Tensor  # int64, N
    test_images: torch.Tensor
    test_labels: torch.Tensor
    class_names: tuple[str, ...]
    normalization: Normalization

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_images.shape[1:]
        return int(c), int(h), int(w)

    def checksum(self) -> str:
        """SHA-256 of both splits' pixels and labels: the card's data lineage."""
        digest = hashlib.sha256()
        for tensor in (self.train_images, self.train_labels, self.test_images, self.test_labels):
            digest.update(tensor.contiguous().numpy().tobytes())
        return digest.hexdigest()

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N×C×H×W → float32 model input (the same arithmetic as ToTensor + Normalize)."""
        mean = torch.tensor(self.normalization.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.normalization.std).view(1, -1, 1, 1)
        return (images.float().div(255) - mean) / std


def load_dataset(
    dataset: str,
    *,
    data_root: str | os.PathLike[str] | None = None,
    image_size: int = 28,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> DatasetBundle:
    """Load ``mnist``, ``fashion-mnist`` or an image folder (one sub-folder per class)."""
    if dataset in BUILTIN_DATASETS:
        return _load_builtin(dataset, resolve_data_root(data_root))
    path = Path(dataset).expanduser()
    if not path.is_dir():
        raise DataError(
            f"dataset {dataset!r} is neither {' nor '.join(BUILTIN_DATASETS)} nor a directory "
            "of images with one sub-folder per class",
            path=path,
        )
    resolved = path.resolve()
    if resolved == Path("/") or any(resolved == Path(d) or Path(d) in resolved.parents for d in _SYSTEM_DIRS):
        raise DataError(f"dataset {dataset!r} resolves to {resolved}, a system folder, not images", path=path)
    return _load_image_folder(path, image_size=image_size, test_fraction=test_fraction, seed=seed)


def load_dataset_for(config: TrainConfig, data_root: str | os.PathLike[str] | None = None) -> DatasetBundle:
    """The dataset a training config names, split as it says (``data_root`` overrides the config's)."""
    return load_dataset(
        config.dataset,
        data_root=data_root or config.data_root,
        image_size=config.image_size,
        test_fraction=config.test_fraction,
        seed=config.seed,
    )


def _load_builtin(name: str, root: Path) -> DatasetBundle:
    from torchvision import datasets

    cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
    raw = root / cls.__name__ / "raw"
    try:
        train, test = (_builtin_split(cls, root, train) for train in (True, False))
    except (RuntimeError, OSError, ValueError) as exc:
        raise DataError(
            f"{name} not found in {raw} and could not be downloaded ({describe(exc)}); put the IDX files "
            f"there, or point --data-root / EDGECNN_DATA at a folder holding {cls.__name__}/raw",
            path=raw,
        ) from exc
    return DatasetBundle(
        name=name,
        train_images=train.data.unsqueeze(1).contiguous(),
        train_labels=train.targets.long(),
        test_images=test.data.unsqueeze(1).contiguous(),
        test_labels=test.targets.long(),
        class_names=tuple(str(c).split(" - ")[0] if name == "mnist" else str(c) for c in train.classes),
        normalization=_BUILTIN_NORMALIZATION[name],
    )


def _builtin_split(cls: type, root: Path, train: bool):  # -> torchvision.datasets.MNIST
    """One split from disk; only when its files are missing, a download (whose progress torchvision
    prints: it goes to stderr, stdout is kept for our results)."""
    try:
        return cls(str(root), train=train, download=False)
    except RuntimeError:  # "Dataset not found"
        with contextlib.redirect_stdout(sys.stderr):
            return cls(str(root), train=train, download=True)


def _load_image_folder(root: Path, *, image_size: int, test_fraction: float, seed: int) -> DatasetBundle:
    """``root/train/<class>/*`` + ``root/test/<class>/*`` (or ``val/``), else ``root/<class>/*`` split
    into a seeded, class-stratified test share. Grayscale when every sampled image is grey, else RGB."""
    split_dirs = [root / "train", next((root / d for d in ("test", "val") if (root / d).is_dir()), None)]
    if split_dirs[0].is_dir() and split_dirs[1] is not None:
        train_set, test_set = (_image_folder(d) for d in split_dirs)
        if train_set.classes != test_set.classes:
            raise DataError(
                f"{split_dirs[0]} and {split_dirs[1]} hold different class folders: "
                f"{train_set.classes} vs {test_set.classes}"
            )
        channels = _guess_channels([p for p, _ in train_set.samples])
        train_x, train_y = _decode(train_set, channels, image_size)
        test_x, test_y = _decode(test_set, channels, image_size)
    else:
        full = _image_folder(root)
        channels = _guess_channels([p for p, _ in full.samples])
        images, labels = _decode(full, channels, image_size)
        test_idx = _stratified_holdout(labels, test_fraction, seed)
        keep = torch.ones(len(labels), dtype=torch.bool)
        keep[test_idx] = False
        train_x, train_y, test_x, test_y = images[keep], labels[keep], images[test_idx], labels[test_idx]
    pixels = train_x.float().div(255).transpose(0, 1).reshape(channels, -1)
    std = pixels.std(dim=1).clamp_min(1e-3)  # a constant-colour set must not divide by zero
    return DatasetBundle(
        name=str(root),
        train_images=train_x,
        train_labels=train_y,
        test_images=test_x,
        test_labels=test_y,
        class_names=tuple(train_set.classes if "train_set" in locals() else full.classes),
        normalization=Normalization(
            tuple(round(float(m), 4) for m in pixels.mean(dim=1)), tuple(round(float(s), 4) for s in std)
        ),
    )


def _image_folder(root: Path):  # -> torchvision.datasets.ImageFolder
    from torchvision import datasets

    try:
        folder = datasets.ImageFolder(str(root))
    except (FileNotFoundError, OSError) as exc:
        raise DataError(f"{root}: {describe(exc)}; expected one sub-folder of images per class", path=root) from exc
    if len(folder.classes) < 2:
        raise DataError(f"{root}: found {len(folder.classes)} class folder(s); a classifier needs at least 2")
    return folder


def _guess_channels(paths: list[str], sample: int = 64) -> int:
    import numpy as np
    from PIL import Image

    step = max(1, len(paths) // sample)
    for path in paths[::step]:
        rgb = np.asarray(_open_image(path, Image).convert("RGB"))
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])):
            return 3
    return 1


def _open_image(path: str, image_module):  # -> PIL.Image.Image
    try:
        image = image_module.open(path)
        image.load()
        return image
    except (OSError, ValueError, image_module.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {path}: {describe(exc)}", path=path) from exc


def _decode(folder, channels: int, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image of an ImageFolder → uint8 N×C×S×S (bilinear resize, as torchvision's Resize)."""
    import numpy as np
    from PIL import Image

    mode = "L" if channels == 1 else "RGB"
    arrays = []
    for path, _ in folder.samples:
        image = _open_image(path, Image).convert(mode).resize((image_size, image_size), Image.BILINEAR)
        arrays.append(np.asarray(image, dtype=np.uint8).reshape(image_size, image_size, channels))
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(folder.targets, dtype=torch.long)


def split_validation(labels: torch.Tensor, size: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Training and validation indices of a training set: exactly ``size`` images (None: 1/12, at most
    5,000; 0: none) held out, each class in proportion (largest remainders, at least one per class),
    seeded apart from the test split's draw."""
    if size is None:
        size = min(5000, round(len(labels) / 12))
    if size == 0:
        return torch.arange(len(labels)), torch.arange(0)
    classes, counts = labels.unique(return_counts=True)
    if size >= len(labels) or size < len(classes) or int(counts.min()) < 2:
        raise DataError(
            f"cannot hold {size} validation image(s) out of {len(labels)} training images in {len(classes)} "
            f"classes (each class needs 2 or more images, and one of them for validation); set --val-size"
        )
    share = counts.double() * size / len(labels)
    quota = share.floor().long().clamp(1, None)
    for i in (share - share.floor()).argsort(descending=True)[: max(0, size - int(quota.sum()))]:
        quota[i] += 1
    quota = torch.minimum(quota, counts - 1)  # every class keeps training images
    generator = torch.Generator().manual_seed(seed + _VALIDATION_SALT)
    val = []
    for cls, n in zip(classes, quota, strict=True):
        members = (labels == cls).nonzero().flatten()
        val.append(members[torch.randperm(len(members), generator=generator)[: int(n)]])
    val_idx = torch.cat(val).sort().values
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[val_idx] = False
    return keep.nonzero().flatten(), val_idx


_VALIDATION_SALT = 0x5EED  # the validation draw must not be the image folder's test draw with the same seed


def _stratified_holdout(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Indices of a seeded share taken from each class (at least one image per class)."""
    generator = torch.Generator().manual_seed(seed)
    picked = []
    for cls in labels.unique():
        members = (labels == cls).nonzero().flatten()
        if len(members) < 2:
            raise DataError(
                f"class {int(cls)} has {len(members)} image(s); each class needs at least 2 to hold one out for testing"
            )
        count = max(1, round(len(members) * fraction))
        picked.append(members[torch.randperm(len(members), generator=generator)[:count]])
    return torch.cat(picked).sort().values


def split_for_training(
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
