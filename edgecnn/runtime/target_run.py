"""Running on a target: a model's logits on prepared inputs (:func:`target_logits`), and a command of the
device install (:func:`device_command`, the arm64 root's ``edgecnn``).

Files reach a target through a :class:`Workspace`: a temporary folder the target can see (inside the
arm64 root for a chroot), removed afterwards. A target that fails to run (QEMU missing, a crash, a
timeout) is a :class:`~edgecnn.errors.TargetError` carrying the last lines it printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import TargetError
from edgecnn.runtime.targets import DEVICE_VENV, Target, arm64_root, chroot_binary, qemu_binary, readiness, web_dir

__all__ = [
    "Workspace",
    "workspace",
    "target_logits",
    "require_ready",
    "device_command",
    "RUN_START_S",
    "RUN_PER_IMAGE_S",
    "ROOT_QEMU",
]

RUN_START_S = 300  # a hang guard, not a speed limit: a run may take this long to start (Python under QEMU) …
RUN_PER_IMAGE_S = 5.0  # … plus this per image (x86-64-v3 emulates FMA in software: 0.54 s per keras_same image)
ROOT_QEMU = "/usr/local/bin/qemu-aarch64-static"  # where setup puts QEMU inside the arm64 root
_WEB_RUNNER = Path(__file__).with_name("web_logits.mjs")


@dataclass(frozen=True)
class Workspace:
    host: Path  # the folder as this machine sees it
    seen: str  # the same folder as the target sees it

    def put(self, source: Path, name: str) -> str:
        shutil.copyfile(source, self.host / name)
        return self.at(name)

    def at(self, name: str) -> str:
        return f"{self.seen}/{name}"


@contextlib.contextmanager
def workspace(target: Target) -> Iterator[Workspace]:
    inside = arm64_root() / "tmp" if target.runner == "arm64-root" else None
    host = Path(tempfile.mkdtemp(prefix="edgecnn-target-", dir=inside))
    try:
        seen = "/tmp/" + host.name if inside is not None else str(host)
        yield Workspace(host, seen)
    finally:
        shutil.rmtree(host, ignore_errors=True)


def target_logits(
    target: Target, model: Path, feed: np.ndarray, batch: int, *, jobs: int = 1
) -> tuple[np.ndarray, dict[str, Any]]:
    """``model``'s logits on ``feed`` computed on ``target``, and what ran them (runtime, version, machine).
    ``jobs`` processes at once, each a share of the images (whole batches): an emulated CPU is one thread."""
    require_ready(target)
    shares = max(1, min(jobs, len(feed) // max(batch, 1)))
    bounds = [round(i * len(feed) / shares / batch) * batch for i in range(shares)] + [len(feed)]
    with ThreadPoolExecutor(shares) as pool:
        parts = list(pool.map(lambda i: _share(target, model, feed[bounds[i] : bounds[i + 1]], batch), range(shares)))
    logits = np.concatenate([part for part, _ in parts])
    return logits, parts[0][1]


def _share(target: Target, model: Path, feed: np.ndarray, batch: int) -> tuple[np.ndarray, dict[str, Any]]:
    with workspace(target) as space:
        dtype = _feed_dtype(feed)
        feed.astype(np.dtype(dtype).newbyteorder("<")).tofile(space.host / "input.bin")
        args = [space.put(model, "model.onnx"), space.at("input.bin"), json.dumps(list(feed.shape)), dtype]
        args += [space.at("logits.f32"), str(batch)]
        if target.runner == "node":
            command = ["node", str(_web_runner()), *args]
        else:
            command = [*python_command(target), "-m", "edgecnn.runtime.target_logits", *args]
        printed = _run(target, command, timeout=RUN_START_S + RUN_PER_IMAGE_S * len(feed))
        facts = _last_json(target, printed)
        logits = np.fromfile(space.host / "logits.f32", dtype="<f4")
    rows = len(feed)
    if logits.size % max(rows, 1):
        raise TargetError(f"{target.name}: {logits.size} logits for {rows} images")
    return logits.reshape(rows, -1), facts


def _feed_dtype(feed: np.ndarray) -> str:
    if feed.dtype not in (np.float32, np.uint8):
        raise TargetError(f"a target takes float32 or uint8 inputs, not {feed.dtype}")
    return str(feed.dtype)


def device_command(target: Target, args: Sequence[str], files: dict[str, Path]) -> str:
    """``python -m edgecnn ARGS`` on the target's Python (the device install on aarch64), with ``files`` put
    where it sees them: ``{name}`` in ARGS becomes the path there of ``files[name]`` (named NAME + its suffix).
    Returns what it printed."""
    require_ready(target)
    with workspace(target) as space:
        where = {name: space.put(path, name + path.suffix) for name, path in files.items()}
        argv = [arg.format(**where) for arg in args]
        return _run(target, [*python_command(target), "-m", "edgecnn", *argv], timeout=RUN_START_S)


def python_command(target: Target) -> list[str]:
    if target.runner == "host":
        return [sys.executable]
    if target.runner == "qemu-x86_64":
        return [str(qemu_binary("x86_64")), "-cpu", str(target.cpu), sys.executable]
    if target.runner == "arm64-root":
        return [chroot_binary(), str(arm64_root()), ROOT_QEMU, "-cpu", str(target.cpu), f"{DEVICE_VENV}/bin/python3"]
    raise TargetError(f"{target.name} runs no Python; it runs models only")


def require_ready(target: Target) -> None:
    """Raise TargetError naming what is missing and what makes ``target`` ready, unless it is ready."""
    state = readiness(target)
    if not state.ready:
        make = f"; {state.make}" if state.make else ""
        raise TargetError(f"{target.name} is not ready here: {state.why}{make}")


def _web_runner() -> Path:
    """The Node runner beside ``node_modules`` (ES modules resolve packages from the script's folder)."""
    placed = web_dir() / _WEB_RUNNER.name
    if not placed.is_file() or placed.read_bytes() != _WEB_RUNNER.read_bytes():
        shutil.copyfile(_WEB_RUNNER, placed)
    return placed


def _environment(target: Target) -> dict[str, str]:
    if target.runner == "arm64-root":  # nothing of this machine's leaks into the device
        base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"}
    else:
        base = dict(os.environ)
    return {**base, "EDGECNN_TUNE": "0", "EDGECNN_CACHE": "/tmp/edgecnn-target-cache", "OMP_NUM_THREADS": "1"}


def _run(target: Target, command: list[str], *, timeout: float) -> str:
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_environment(target),
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise TargetError(f"{target.name}: no answer within {timeout:.0f} s") from exc
    except OSError as exc:
        raise TargetError(f"{target.name}: cannot start {command[0]}: {exc.strerror or exc}") from exc
    if done.returncode:
        said = [line for line in done.stderr.splitlines() if line.strip() and "TCG doesn't support" not in line]
        tail = " | ".join(said[-3:]) or f"exit {done.returncode}"
        raise TargetError(f"{target.name}: the run failed (exit {done.returncode}): {tail}")
    return done.stdout


def _last_json(target: Target, printed: str) -> dict[str, Any]:
    lines = [line for line in printed.splitlines() if line.startswith("{")]
    try:
        return dict(json.loads(lines[-1]))
    except (IndexError, ValueError) as exc:
        raise TargetError(f"{target.name}: the runner printed no result line") from exc
