"""The six seed nets and their tutorials' datasets, and one-epoch checkpoints of them for the
benchmark scripts in this folder (trained on demand, seed 0)."""

from __future__ import annotations

from pathlib import Path

from edgecnn.config import TrainConfig
from edgecnn.files import CHECKPOINT_NAME

SEED_NETS = {
    "mnist_cnn3": "mnist",
    "convnet5": "mnist",
    "keras_conv2": "mnist",
    "fashion_bn": "fashion-mnist",
    "keras_same": "fashion-mnist",
    "keras_valid": "fashion-mnist",
}


def checkpoint_for(arch: str, runs: Path) -> Path:
    """``runs/ARCH/checkpoint.pt``, trained there for one epoch on the net's dataset if missing."""
    path = runs / arch / CHECKPOINT_NAME
    if not path.is_file():
        print(f"# training {arch} on {SEED_NETS[arch]} for one epoch -> {path.parent}", flush=True)
        from edgecnn.training.loop import fit

        fit(TrainConfig(arch=arch, dataset=SEED_NETS[arch], epochs=1, seed=0, device="cpu"), path.parent)
    return path
