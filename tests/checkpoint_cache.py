"""A cache of the test suite's trained checkpoints outside the repo, keyed so that it cannot hide a change.

The key is a SHA-256 of: every source file that shapes a checkpoint (``edgecnn/training/``, the card, the
configs, files, errors and the package version), the torch version, the training settings and the
dataset's own checksum. Change any of them and the key changes: the net is trained afresh. A fresh machine
has no cache and trains. ``EDGECNN_TEST_CACHE=off`` switches it off; ``EDGECNN_TEST_CACHE=DIR`` moves it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = (
    "edgecnn/training/*.py",
    "edgecnn/card.py",
    "edgecnn/config.py",
    "edgecnn/files.py",
    "edgecnn/errors.py",
    "edgecnn/__init__.py",
)


def cache_dir() -> Path | None:
    setting = os.environ.get("EDGECNN_TEST_CACHE", "")
    if setting.lower() in ("off", "0", "no"):
        return None
    if setting:
        return Path(setting)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edgecnn" / "test-checkpoints"


def code_digest(repo: Path = REPO) -> str:
    digest = hashlib.sha256()
    for pattern in SOURCES:
        for path in sorted(repo.glob(pattern)):
            digest.update(path.relative_to(repo).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def cache_key(config_json: str, data_checksum: str, *, code: str, torch_version: str) -> str:
    parts = (code, torch_version, config_json, data_checksum)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def cached_checkpoint(key: str, dest: Path, train: Callable[[Path], Path]) -> tuple[Path, bool]:
    """``dest/checkpoint.pt`` from the cache when ``key`` is there, else trained by ``train(dest)`` and
    stored. Returns the path and whether it came from the cache."""
    from edgecnn.files import CHECKPOINT_NAME, atomic_path

    root = cache_dir()
    cached = root / key / CHECKPOINT_NAME if root else None
    target = dest / CHECKPOINT_NAME
    if cached is not None and cached.is_file():
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, target)
        return target, True
    made = train(dest)
    if cached is not None:
        with atomic_path(cached) as tmp:  # a crash mid-copy leaves no half file to be trusted later
            shutil.copyfile(made, tmp)
    return made, False
