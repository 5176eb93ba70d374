"""Shared fixtures: real datasets loaded once per session, and a tiny net trained for real."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path:
    env = os.environ.get("EDGECNN_DATA")
    return Path(env) if env else REPO.parent / "shared" / "datasets"


# Subprocesses (the CLI tests) read the same root; ../shared/datasets beside the repo is the default.
os.environ.setdefault("EDGECNN_DATA", str(_data_root()))


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _data_root()
    if not (root / "FashionMNIST" / "raw").is_dir():
        pytest.fail(f"real datasets not found under {root}; set EDGECNN_DATA (tools/test.sh does)")
    return root


@pytest.fixture(scope="session")
def fashion(data_root):
    from edgecnn.data import load_dataset

    return load_dataset("fashion-mnist", data_root=data_root)


@pytest.fixture(scope="session")
def mnist(data_root):
    from edgecnn.data import load_dataset

    return load_dataset("mnist", data_root=data_root)


def run_cli(*args: str, env: dict[str, str] | None = None, block_torch: bool = False,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``edgecnn ARGS`` in a new process, optionally with torch made unimportable."""
    prelude = "import sys; sys.modules['torch'] = None; " if block_torch else ""
    code = prelude + "from edgecnn.cli import main; sys.argv[0] = 'edgecnn'; main()"
    if not block_torch:
        code = "import sys; " + code
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd or REPO, timeout=600)


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory, mnist, fashion):
    """``checkpoints(arch, dataset="mnist")``: the net trained one epoch on 10,000 real images of that
    dataset (seed 0), built lazily, once per session."""
    from edgecnn.checkpoint import CHECKPOINT_NAME
    from edgecnn.config import TrainConfig
    from edgecnn.train import fit

    made = {}

    def get(arch: str, dataset: str = "mnist"):
        if (arch, dataset) not in made:
            out = tmp_path_factory.mktemp(f"ckpt-{arch}-{dataset}")
            fit(TrainConfig(arch=arch, dataset=dataset, epochs=1, limit_train=10000, seed=0, device="cpu"),
                out, data=mnist if dataset == "mnist" else fashion)
            made[arch, dataset] = out / CHECKPOINT_NAME
        return made[arch, dataset]

    return get
