"""Outputs are checked before any work, temporary names are owned (dead writers' debris is removed, live
writers' never), and a report card names the SHA-256 of the model it describes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import run_cli

from edgecnn.errors import ConfigError, ParityError
from edgecnn.files import (
    atomic_path,
    check_writable,
    file_sha256,
    remove_stale_work_dirs,
    report_path,
    work_dir,
    write_json,
)

QUICK = dict(parity_samples=300, latency_iters=3)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def afile(tmp_path):
    path = tmp_path / "afile"
    path.write_text("not a folder")
    return path


@pytest.mark.parametrize("directory", [False, True], ids=["file", "folder"])
def test_check_writable_refuses_a_path_under_a_file_or_proc_and_creates_nothing(afile, directory):
    before = _tree(afile.parent)
    for bad in (afile / "sub" / "x.json", afile / "x.json", Path("/proc/edgecnn-x")):
        with pytest.raises(ConfigError) as info:
            check_writable(bad, directory=directory, what="--out")
        message = str(info.value)
        assert "\n" not in message and message.startswith(f"--out {bad}")
        assert _tree(afile.parent) == before
    assert not Path("/proc/edgecnn-x").exists()
    with pytest.raises(ConfigError, match="cannot create") as info:
        check_writable("/proc/edgecnn-x.json")
    assert isinstance(info.value.__cause__, OSError)  # the OSError stays as the cause


def test_check_writable_refuses_the_wrong_kind_and_dangling_links(tmp_path, afile):
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_writable(afile, directory=True)
    with pytest.raises(ConfigError, match="is a folder; give a file path"):
        check_writable(tmp_path)
    with pytest.raises(ConfigError, match="not a regular file"):
        check_writable("/dev/null")  # a rename onto it would replace the device node
    for directory in (False, True):
        with pytest.raises(ConfigError, match="dangling symlink"):
            check_writable(link, directory=directory)
        with pytest.raises(ConfigError, match="dangling symlink"):
            check_writable(link / "x.json", directory=directory)
    assert not (tmp_path / "nowhere").exists()


def test_check_writable_accepts_good_paths_and_leaves_nothing_behind(tmp_path, afile):
    assert check_writable(tmp_path / "a" / "b" / "m.onnx") == tmp_path / "a" / "b" / "m.onnx"
    assert check_writable(tmp_path / "run", directory=True) == tmp_path / "run"
    assert check_writable(afile) == afile and afile.read_text() == "not a folder"  # overwriting is fine
    assert check_writable(tmp_path, directory=True) == tmp_path
    assert _tree(tmp_path) == ["afile"]  # the folders it made to probe are gone again
    with pytest.raises(ConfigError, match="cannot create files"):  # the writer's own temp name is too long
        check_writable(tmp_path / ("m" * 240))


def test_atomic_path_removes_dead_writers_temp_files_and_keeps_live_ones(tmp_path):
    target = tmp_path / "checkpoint.pt"
    dead = tmp_path / f".checkpoint.pt.edgecnn-{_dead_pid()}-abcd1234.tmp"
    live = tmp_path / f".checkpoint.pt.edgecnn-{os.getpid()}-abcd1234.tmp"
    parent = tmp_path / f".checkpoint.pt.edgecnn-{os.getppid()}-abcd1234.tmp"  # another live process
    other = tmp_path / f".metrics.json.edgecnn-{_dead_pid()}-abcd1234.tmp"  # another target's: not this write's
    foreign = tmp_path / ".checkpoint.pt.x1y2z3.tmp"  # not edgecnn's naming: never touched
    for path in (dead, live, parent, other, foreign):
        path.write_bytes(b"")
    with atomic_path(target) as tmp:
        assert tmp.name.startswith(f".checkpoint.pt.edgecnn-{os.getpid()}-") and tmp.name.endswith(".tmp")
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert not dead.exists()
    assert live.exists() and parent.exists() and other.exists() and foreign.exists()


def test_atomic_path_leaves_no_temp_file_on_failure(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "m.onnx") as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert _tree(tmp_path) == []


def test_work_dirs_are_owned_and_dead_ones_are_removed(tmp_path):
    dead = tmp_path / f"edgecnn-export-{_dead_pid()}-abcd1234"
    live = tmp_path / f"edgecnn-quantize-{os.getppid()}-abcd1234"
    unrelated = tmp_path / "edgecnn-export-abcd1234"  # an older edgecnn's name: no pid, not ours to judge
    for path in (dead, live, unrelated):
        (path / "sub").mkdir(parents=True)
        (path / "sub" / "fp32.onnx").write_bytes(b"x")
    link = tmp_path / f"edgecnn-export-{_dead_pid()}-linkxxxx"
    link.symlink_to(live)
    assert remove_stale_work_dirs(tmp_path) == [dead]
    assert not dead.exists() and live.exists() and unrelated.exists() and link.is_symlink()
    with work_dir("export") as work:
        assert work.parent == Path(tempfile.gettempdir())
        assert work.name.startswith(f"edgecnn-export-{os.getpid()}-") and work.is_dir()
    assert not work.exists()


def test_file_sha256(tmp_path):
    path = tmp_path / "blob"
    data = os.urandom(3 << 20)  # several read chunks
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def exported(checkpoints, tmp_path_factory):
    from edgecnn.config import ExportConfig
    from edgecnn.export.from_checkpoint import export_checkpoint

    out = tmp_path_factory.mktemp("exported") / "m.onnx"
    export_checkpoint(checkpoints("tiny"), out, ExportConfig(**QUICK))
    return out


def _one_error_line(proc) -> str:
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgecnn: error: "), proc.stderr
    return lines[0]


def test_train_refuses_an_unwritable_out_before_training(tmp_path, afile):
    for out in (afile / "sub", "/proc/edgecnn-x"):
        proc = run_cli(
            "train", "--arch", "tiny", "--dataset", "mnist", "--epochs", "1", "--limit-train", "500", "--out", str(out)
        )
        assert f"--out {out}" in _one_error_line(proc)
    assert list(tmp_path.rglob("checkpoint.pt")) == [] and _tree(tmp_path) == ["afile"]


def test_export_and_quantize_refuse_an_unwritable_out_before_loading_anything(tmp_path, afile, checkpoints):
    ckpt = str(checkpoints("tiny"))
    for args in (
        ("export", ckpt, "--out", str(afile / "m.onnx")),
        ("export", str(tmp_path / "no-such-checkpoint"), "--out", str(afile / "m.onnx")),  # --out is checked first
        ("quantize", str(tmp_path / "no-such.onnx"), "--out", str(afile / "q.onnx")),
    ):
        assert str(afile) in _one_error_line(run_cli(*args))
    assert _tree(tmp_path) == ["afile"]


def test_bench_refuses_unwritable_json_and_plot_paths_before_measuring(exported, tmp_path, afile):
    for args in (("--json", "/proc/x.json"), ("--plot", str(afile / "p.png")), ("--json", str(tmp_path))):
        assert args[1] in _one_error_line(run_cli("bench", str(exported), "--iters", "5", *args, block_torch=True))
    missing = run_cli("bench", str(tmp_path / "no-such.onnx"), "--json", "/proc/x.json", block_torch=True)
    assert "/proc/x.json" in _one_error_line(missing)  # the output is refused before any model is read
    assert _tree(tmp_path) == ["afile"]


def test_report_card_names_the_model_it_describes_and_info_says_so(exported, tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(exported.read_bytes())
    card = json.loads(report_path(exported).read_text())
    assert card["model_sha256"] == file_sha256(exported)
    write_json(report_path(model), card)

    def shown() -> tuple[str, dict]:
        text = run_cli("info", str(model), block_torch=True)
        data = run_cli("info", str(model), "--json", block_torch=True)
        assert text.returncode == data.returncode == 0, text.stderr + data.stderr
        return text.stdout, json.loads(data.stdout)["report"]

    text, data = shown()
    assert "report          m.report.json describes this file" in text
    assert data["matches"] is True and data["path"] == str(report_path(model))
    write_json(report_path(model), {**card, "model_sha256": "0" * 64})  # a kill between model and card
    text, data = shown()
    assert "describes ANOTHER file (sha256 000000000000…); re-export" in text and data["matches"] is False
    report_path(model).unlink()
    text, data = shown()
    assert "report          none beside it" in text and data is None


def test_parity_failures_name_the_output_not_a_deleted_temp_file(checkpoints, exported, tmp_path, monkeypatch):
    from edgecnn.config import ExportConfig, QuantizeConfig
    from edgecnn.export.from_checkpoint import export_checkpoint
    from edgecnn.export.from_onnx import quantize_onnx

    bad = {"max_abs": 10.0, "top1_agreement": 0.5, "accuracy": 0.1}
    monkeypatch.setattr("edgecnn.export.judge.compare_logits", lambda *args: bad)  # the one judge of both
    out = tmp_path / "q.onnx"
    with pytest.raises(ParityError) as info:
        quantize_onnx(exported, out, QuantizeConfig(mode="none", **QUICK))
    assert str(info.value).startswith(f"{out} not written: none disagrees with the fp32 file on 300 test images")
    assert info.value.report.max_abs == 10.0 and isinstance(info.value.__cause__, ParityError)

    out = tmp_path / "m.onnx"
    with pytest.raises(ParityError) as info:
        export_checkpoint(checkpoints("tiny"), out, ExportConfig(quantize="none", **QUICK))
    assert str(info.value).startswith(f"{out} not written: none disagrees with torch on 300 test images")
    assert "edgecnn-export-" not in str(info.value) and info.value.report.top1_agreement == 0.5
    assert _tree(tmp_path) == []
