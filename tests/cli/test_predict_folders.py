"""``edgecnn predict DIR`` over hostile folders, as a real process: a sub-folder it cannot read (permissions enforced
even for root: the process runs without CAP_DAC_OVERRIDE), symlink loops, a FIFO, files gone or broken — one error
line per bad path, the rest classified, exit 1, nothing skipped in silence. Then a seeded, bounded fuzzer over
generated trees asserting the same of every one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, blocking_prelude
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from edgecnn.data.folders import image_files, walk_image_files
from edgecnn.errors import DataError

MODEL = REPO / "models" / "fashion_bn" / "fashion_bn.int8.onnx"


def _unprivileged() -> list[str]:
    """A command prefix under which file permissions hold: root without the capabilities that override them."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: no way to make a folder unreadable to the process")
    return ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]


def predict(*args: str) -> subprocess.CompletedProcess[str]:
    code = blocking_prelude() + "from edgecnn.cli import main; sys.argv[0] = 'edgecnn'; main()"
    command = [*_unprivileged(), sys.executable, "-c", code, "predict", str(MODEL), *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)


def _png(path: Path, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (28, 28), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture
def hostile_tree(tmp_path):
    root = tmp_path / "tree"
    _png(root / "a" / "1.png")
    _png(root / "locked" / "2.png")
    _png(root / "deep" / "3.png")
    (root / "deep" / "loop").symlink_to("..")  # back to root: os.walk would list everything 40 times over
    (root / "self").symlink_to("self")  # a link to itself
    (root / "gone.png").symlink_to("nowhere.png")  # listed, then missing when read
    os.mkfifo(root / "fifo.png")  # its open would wait for a writer for ever
    (root / "noise.png").write_bytes(np.random.default_rng(1).bytes(100))
    (root / "a" / "1.png").with_name("cut.png").write_bytes((root / "a" / "1.png").read_bytes()[:60])
    (root / "locked").chmod(0)
    yield root
    (root / "locked").chmod(0o755)


def test_every_bad_path_is_one_line_and_the_rest_are_classified(hostile_tree):
    proc = predict(str(hostile_tree))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    errors = proc.stderr.strip().splitlines()
    bad = ["deep/loop", "locked", "self", "gone.png", "fifo.png", "noise.png", "a/cut.png"]
    assert len(errors) == len(bad) and all(line.startswith("edgecnn: error: ") for line in errors), errors
    for name in bad:
        assert sum(f"{hostile_tree / name}:" in line for line in errors) == 1, (name, errors)
    classified = [line.split(":")[0] for line in proc.stdout.splitlines()]
    assert classified == [str(hostile_tree / "a" / "1.png"), str(hostile_tree / "deep" / "3.png")]


def test_json_accounts_for_every_bad_path_too(hostile_tree):
    proc = predict(str(hostile_tree), "--json")
    entries = json.loads(proc.stdout)
    assert proc.returncode == 1 and len(entries) == 9
    assert sum("error" in entry for entry in entries) == 7


def test_training_and_export_refuse_a_folder_they_cannot_read_whole_naming_each_path(tmp_path):
    for name in ("cat", "dog"):
        _png(tmp_path / name / "1.png")
    (tmp_path / "cat" / "again").symlink_to("..")
    (tmp_path / "dog" / "self").symlink_to("self")
    with pytest.raises(DataError) as caught:
        image_files(tmp_path)
    assert f"{tmp_path / 'cat' / 'again'}: a symlink loop" in str(caught.value)
    assert f"{tmp_path / 'dog' / 'self'}: a symlink loop" in str(caught.value)
    files, problems = walk_image_files(tmp_path / "cat")
    assert files == [str(tmp_path / "cat" / "1.png")] and len(problems) == 1


# --- the fuzzer: seeded and bounded (about 20 trees, each one process) ---

KINDS = ("valid", "noise", "truncated", "empty", "locked_folder", "loop", "dangling")
entries = st.lists(
    st.tuples(st.sampled_from(KINDS), st.sampled_from(("", "x", "x/y", "z")), st.integers(0, 3)), min_size=1, max_size=8
)


def _build(root: Path, spec: list[tuple[str, str, int]]) -> tuple[set[Path], set[Path], list[Path]]:
    """Make the tree; return (images that must be classified, paths that must each get one error line, locked)."""
    good, bad, locked = set(), set(), []
    for i, (kind, folder, seed) in enumerate(spec):
        where = root / folder
        where.mkdir(parents=True, exist_ok=True)
        path = where / f"{i}.png"
        if kind == "valid":
            _png(path, seed)
            good.add(path)
        elif kind in ("noise", "truncated", "empty"):
            _png(path, seed)
            data = path.read_bytes()
            path.write_bytes(
                {"noise": np.random.default_rng(seed).bytes(64), "truncated": data[:50], "empty": b""}[kind]
            )
            bad.add(path)
        elif kind == "dangling":
            path.symlink_to(f"missing-{i}.png")
            bad.add(path)
        else:  # a locked folder (with an image in it, never read) or a link back to the root
            path = where / f"d{i}"
            if kind == "loop":
                path.symlink_to(os.path.relpath(root, where))
            else:
                _png(path / "hidden.png", seed)
                locked.append(path)
            bad.add(path)
    return good, bad, locked


@settings(max_examples=20, derandomize=True, deadline=None)
@given(spec=entries)
def test_fuzz_predict_over_generated_folders(tmp_path_factory, spec):
    root = tmp_path_factory.mktemp("fuzz")
    good, bad, locked = _build(root, spec)
    for folder in locked:
        folder.chmod(0)
    try:
        proc = predict(str(root))
    finally:
        for folder in locked:
            folder.chmod(0o755)
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == (1 if bad or not good else 0), proc.stderr
    errors = proc.stderr.strip().splitlines()
    assert all(line.startswith("edgecnn: error: ") for line in errors), errors
    if good or bad:  # otherwise the one line says no image files were found
        assert len(errors) == len(bad), (spec, errors)
        assert all(sum(f"{path}:" in line for line in errors) == 1 for path in bad), (spec, errors)
    assert {Path(line.rsplit(": ", 1)[0]) for line in proc.stdout.splitlines()} == good, (spec, proc.stdout)
