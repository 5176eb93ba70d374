"""Shared fixtures: real datasets loaded once per session, and real nets trained for real (cached)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ helpers for tests in sub-folders

# What a plain `pip install edgecnn` lacks: the device-side tests run with all of them unimportable.
TRAINING_SIDE = ("torch", "torchvision", "onnx", "matplotlib")


def _data_root() -> Path:
    env = os.environ.get("EDGECNN_DATA")
    return Path(env) if env else REPO.parent / "shared" / "datasets"


# Property tests: a fixed seed and a bounded budget in CI; `--hypothesis-profile thorough` for a long local hunt.
_QUIET = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large]
settings.register_profile("ci", max_examples=150, derandomize=True, deadline=None, suppress_health_check=_QUIET)
settings.register_profile("thorough", max_examples=5000, deadline=None, suppress_health_check=_QUIET)
settings.load_profile("ci")

# Subprocesses (the CLI tests) read the same root; ../shared/datasets beside the repo is the default.
os.environ.setdefault("EDGECNN_DATA", str(_data_root()))
# backend="auto" would tune every fresh test model for up to 1.3 s on its first load: off here, as a process that
# must start fast turns it off; the tuning tests (tests/runtime/test_tuning.py, the serve start-up test) turn it
# on. The tuning cache is the session's own, never the user's.
os.environ["EDGECNN_TUNE"] = "0"
# The check targets stay where `edgecnn targets setup` (tools/test.sh) made them: the user cache dir's.
if "EDGECNN_TARGETS" not in os.environ:
    from edgecnn.runtime.targets import targets_dir

    os.environ["EDGECNN_TARGETS"] = str(targets_dir())
os.environ["EDGECNN_CACHE"] = tempfile.mkdtemp(prefix="edgecnn-test-cache-")


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _data_root()
    if not (root / "FashionMNIST" / "raw").is_dir():
        pytest.fail(f"real datasets not found under {root}; set EDGECNN_DATA (tools/test.sh does)")
    return root


@pytest.fixture(scope="session")
def fashion(data_root):
    from edgecnn.training.data import load_dataset

    return load_dataset("fashion-mnist", data_root=data_root)


@pytest.fixture(scope="session")
def mnist(data_root):
    from edgecnn.training.data import load_dataset

    return load_dataset("mnist", data_root=data_root)


def blocking_prelude(modules: tuple[str, ...] = TRAINING_SIDE) -> str:
    """Python source that makes ``modules`` unimportable, as on a device with only `pip install edgecnn`."""
    return "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in modules)


def torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc-per-node 2 -m edgecnn train ARGS`` (gloo on the CPU)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    return subprocess.run(
        [*command, "-m", "edgecnn", "train", *args], capture_output=True, text=True, cwd=REPO, timeout=600
    )


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    block_torch: bool = False,
    blocked: tuple[str, ...] = (),
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``edgecnn ARGS`` in a new process; ``block_torch``: as a device install (torch, torchvision,
    onnx and matplotlib unimportable); ``blocked``: these modules only."""
    prelude = blocking_prelude(TRAINING_SIDE if block_torch else blocked)
    code = prelude + "from edgecnn.cli import main; sys.argv[0] = 'edgecnn'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd or REPO,
        timeout=600,
    )


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory, mnist, fashion):
    """``checkpoints(arch, dataset="mnist")``: the net trained one epoch on 10,000 real images of that
    dataset (seed 0), built lazily, once per session, and cached across sessions (checkpoint_cache.py)."""
    import torch
    from checkpoint_cache import cache_key, cached_checkpoint, code_digest

    from edgecnn.config import TrainConfig, config_to_json
    from edgecnn.files import CHECKPOINT_NAME
    from edgecnn.training.loop import fit

    made, code = {}, code_digest()

    def get(arch: str, dataset: str = "mnist"):
        if (arch, dataset) not in made:
            config = TrainConfig(arch=arch, dataset=dataset, epochs=1, limit_train=10000, seed=0, device="cpu")
            data = mnist if dataset == "mnist" else fashion
            key = cache_key(config_to_json(config), data.checksum(), code=code, torch_version=torch.__version__)

            def train(out: Path) -> Path:
                fit(config, out, data=data)
                return out / CHECKPOINT_NAME

            dest = tmp_path_factory.mktemp(f"ckpt-{arch}-{dataset}")
            made[arch, dataset], _ = cached_checkpoint(key, dest, train)
        return made[arch, dataset]

    return get


@pytest.fixture(scope="session")
def ready_targets() -> list[str]:
    """The check targets, every one ready (tools/test.sh runs `edgecnn targets setup`); where that cannot be
    (not root: the arm64 root is a chroot and set-up uses apt-get) the tests skip, saying so."""
    from edgecnn.runtime.targets import get_target, list_targets, readiness

    missing = {name: readiness(get_target(name)) for name in list_targets() if not readiness(get_target(name)).ready}
    if missing and os.geteuid() != 0:
        pytest.skip("the check targets need root to set up and run (`sudo edgecnn targets setup`)")
    if missing:
        pytest.fail("targets not ready: " + "; ".join(f"{n}: {s.why}" for n, s in missing.items()))
    return list_targets()


def lying_png(path: Path, side: int = 60000) -> None:
    """A 1×1 PNG whose header claims side×side pixels (a decompression bomb's shape, without the bytes)."""
    import struct
    import zlib

    from PIL import Image

    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", side, side)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    path.write_bytes(bytes(data))


def plain_torch_export(model, path: Path, *, external_data: bool = True, fixed_batch: bool = False) -> Path:
    """``model`` exported the way a user does it with torch alone: no edgecnn metadata, a dynamic batch (or with
    ``fixed_batch`` one image at a time, as many exporters write it), and (torch's default) weights in a
    ``.data`` file beside it unless ``external_data=False``."""
    import torch

    batch = torch.export.Dim("batch", min=1, max=1024)
    torch.onnx.export(
        model,
        (torch.zeros(1 if fixed_batch else 2, 1, 28, 28),),
        str(path),
        dynamo=True,
        opset_version=18,
        input_names=["input"],
        output_names=["logits"],
        dynamic_shapes=None if fixed_batch else ({0: batch},),
        external_data=external_data,
    )
    return path
