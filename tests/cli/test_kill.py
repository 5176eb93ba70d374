"""SIGKILL, which runs no cleanup: the killed run leaves only whole artifacts, and the next run removes its
temporary debris (named after the dead pid) and completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from conftest import REPO, run_cli

from edgecnn.files import file_sha256

DEADLINE_S = 120
KILL_WITHIN_S = 2.0  # a couple of tiny epochs: the kill lands mid-write if polling sees a temp file by then


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "edgecnn", *args],
        env=os.environ,  # EDGECNN_DATA included (conftest sets it)
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_for(proc: subprocess.Popen, found: Callable[[], object], what: str, deadline_s: float = DEADLINE_S) -> object:
    """Poll ``found`` until it returns something; fail if the process ends first or the deadline passes."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        hit = found()
        if hit:
            return hit
        if proc.poll() is not None:
            raise AssertionError(f"the process ended (rc {proc.returncode}) before {what}: {proc.stderr.read()}")
        time.sleep(0.001)
    raise AssertionError(f"no {what} within {deadline_s} s")


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()


def _temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_training_run_killed_mid_write_resumes_and_its_debris_goes(tmp_path):
    from edgecnn.training.checkpoint import load_checkpoint

    out = tmp_path / "run"
    train = ("train", "--arch", "tiny", "--dataset", "mnist", "--epochs", "50", "--limit-train", "1000")
    proc = _start(*train, "--out", str(out))
    try:
        _wait_for(proc, lambda: (out / "checkpoint.pt").exists(), "first checkpoint")
        # kill during a later epoch's write, while its temp file exists, if polling catches one in time
        end = time.monotonic() + KILL_WITHIN_S
        while time.monotonic() < end and not _temp_files(out) and proc.poll() is None:
            time.sleep(0.0005)
    finally:
        _kill(proc)
    debris = _temp_files(out)
    if not debris:  # the write finished before the kill landed: leave what a kill mid-write leaves
        (out / f".checkpoint.pt.edgecnn-{proc.pid}-killedxx.tmp").write_bytes(b"")
    assert all(name.startswith(f".checkpoint.pt.edgecnn-{proc.pid}-") for name in _temp_files(out))
    epochs = load_checkpoint(out).epoch  # the surviving checkpoint is whole
    assert epochs >= 1

    resumed = run_cli("train", "--out", str(out), "--resume", "--epochs", str(epochs + 1), "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["epochs"][-1]["epoch"] == epochs + 1
    assert _temp_files(out) == []
    assert load_checkpoint(out).epoch == epochs + 1


def _work_dirs(pid: int) -> list[Path]:
    return sorted(Path(tempfile.gettempdir()).glob(f"edgecnn-export-{pid}-*"))


def test_an_export_killed_midway_leaves_nothing_and_the_next_removes_its_folder(checkpoints, tmp_path):
    ckpt, out = str(checkpoints("tiny")), tmp_path / "m.onnx"
    args = ("export", ckpt, "--out", str(out), "--quantize", "auto", "--parity-samples", "10000")
    proc = _start(*args)
    try:
        killed = _wait_for(proc, lambda: _work_dirs(proc.pid), "temp folder")
        time.sleep(0.3)  # let it write into the folder
    finally:
        _kill(proc)
    assert proc.returncode == -signal.SIGKILL, "the export finished before the kill"
    assert _work_dirs(proc.pid) == killed  # SIGKILL ran no cleanup: the debris is there
    assert sorted(p.name for p in tmp_path.iterdir()) == []

    again = run_cli(*args, "--latency-iters", "3")
    assert again.returncode == 0, again.stderr
    assert _work_dirs(proc.pid) == []  # the dead run's folder was removed when the next one started
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.report.json"]
    assert json.loads((tmp_path / "m.report.json").read_text())["model_sha256"] == file_sha256(out)
