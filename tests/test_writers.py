"""Every artifact writer meets a real disk failure — a full disk (a small tmpfs, filled) or a file the kernel will
not let go (``chattr +i``) — after its output was probed writable: one error line naming the file, exit 1, the old
file kept, no temporary file or folder left behind."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, run_cli

from edgecnn.errors import WriteError
from edgecnn.files import atomic_path, work_dir

QUICK = ("--parity-samples", "200", "--latency-iters", "3")
BENCH = ("--iters", "3", "--warmup", "1", "--cold-runs", "0", "--batch-sizes", "1")


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs filled to the last byte: creating a file works (an inode), writing one byte does not."""
    mount = tmp_path / "full"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.decode().strip()}): no real full disk to write to")
    try:
        with contextlib.suppress(OSError), open(mount / "filler", "wb", buffering=0) as filler:
            while True:
                filler.write(b"\0" * 4096)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


@contextlib.contextmanager
def immutable(path: Path):
    """``chattr +i``: not even root may replace, rename over or delete it (chmod stops no root writer)."""
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("chattr +i is not available here (needs root on a file system that supports it)")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def _write_error(proc, path: Path) -> str:
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"edgecnn: error: cannot write {path}: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def exported(checkpoints, tmp_path_factory):
    out = tmp_path_factory.mktemp("exported") / "m.onnx"
    assert run_cli("export", str(checkpoints("tiny")), "--out", str(out), *QUICK).returncode == 0
    return out


def test_every_cli_writer_on_a_full_disk_says_so_in_one_line_and_leaves_nothing(full_disk, checkpoints, exported):
    train = ("train", "--arch", "tiny", "--dataset", "mnist", "--epochs", "1", "--limit-train", "300")
    cases = [
        ((*train, "--out", str(full_disk / "run")), full_disk / "run" / "checkpoint.pt"),
        (("export", str(checkpoints("tiny")), "--out", str(full_disk / "m.onnx"), *QUICK), full_disk / "m.onnx"),
        (("quantize", str(exported), "--out", str(full_disk / "q.onnx"), "--mode", "fp16", *QUICK), None),
        (("bench", str(exported), *BENCH, "--json", str(full_disk / "b.json")), full_disk / "b.json"),
        (("bench", str(exported), *BENCH, "--plot", str(full_disk / "sub" / "b.png")), full_disk / "sub" / "b.png"),
    ]
    for args, written in cases:
        line = _write_error(run_cli(*args), written or full_disk / "q.onnx")
        assert "No space left on device" in line and "nothing was written" in line
        assert sorted(p.name for p in full_disk.iterdir()) == ["filler"], args  # no temp file, no folder made


def test_an_immutable_artifact_is_kept_and_named(tmp_path, checkpoints, exported):
    old = tmp_path / "m.onnx"
    shutil.copyfile(exported, old)
    before = old.read_bytes()
    with immutable(old):
        line = _write_error(run_cli("export", str(checkpoints("tiny")), "--out", str(old), *QUICK), old)
    assert "the previous file is kept" in line and old.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_training_reports_on_an_immutable_metrics_file(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text("{}\n")
    with immutable(out / "metrics.json"):
        train = ("train", "--arch", "tiny", "--dataset", "mnist", "--epochs", "1", "--limit-train", "300")
        line = _write_error(run_cli(*train, "--out", str(out)), out / "metrics.json")
    assert "previous file is kept" in line and (out / "metrics.json").read_text() == "{}\n"
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_the_zoo_build_reports_an_unwritable_zoo_in_one_line(tmp_path, checkpoints):
    runs, models = tmp_path / "runs", tmp_path / "models"
    (runs / "fashion_bn" / "edgecnn").mkdir(parents=True)
    shutil.copyfile(checkpoints("tiny"), runs / "fashion_bn" / "edgecnn" / "checkpoint.pt")
    models.mkdir()
    with immutable(models):
        args = ["--stage", "package", "--only", "fashion_bn", "--runs", str(runs), "--models", str(models)]
        proc = subprocess.run(
            [sys.executable, str(REPO / "tools" / "build_zoo.py"), *args], capture_output=True, text=True, timeout=600
        )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("build_zoo: error: ") and str(models) in line
    assert list(models.iterdir()) == []


def test_atomic_path_turns_a_failed_rename_into_a_write_error_and_tidies(tmp_path, monkeypatch):
    """Where no real fault is at hand (an unprivileged machine): the lowest-level step, the rename, fails."""
    target = tmp_path / "new" / "deeper" / "out.json"

    def full(*_args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    full_disk = pytest.raises(WriteError, match=r"cannot write .*out\.json: No space left on device")
    with full_disk as caught, atomic_path(target) as tmp:
        tmp.write_text("{}")
    assert caught.value.path == target and list(tmp_path.iterdir()) == []  # the folders it made are gone too


def test_a_read_failure_inside_a_write_is_not_blamed_on_the_write(tmp_path):
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "out.txt") as tmp:
        tmp.write_text((tmp_path / "missing.txt").read_text())
    assert list(tmp_path.iterdir()) == []


def test_a_full_work_folder_is_a_write_error_naming_it(monkeypatch):
    full_disk = pytest.raises(WriteError, match="cannot write temporary files in .*: No space left on device")
    with full_disk as caught, work_dir("test") as work:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(work / "fp32.onnx"))
    assert not caught.value.path.exists()
