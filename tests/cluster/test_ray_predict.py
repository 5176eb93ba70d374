"""`edgecnn predict --engine ray` on a real local Ray cluster (loopback only, stopped with the command): a folder of
real Fashion-MNIST test images written as PNG files, with a corrupt file and unreadable ones among them; every
file gets exactly one row, equal to the Predictor's answer; a run killed midway is resumed by running it again."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, blocking_prelude
from PIL import Image
from ray_processes import session_processes
from serve.serving import fashion_test_images

from edgecnn.runtime import Predictor

pytest.importorskip("ray", reason="the [ray] extra is not installed")  # tools/test.sh installs it

MODEL = "fashion_bn"
IMAGES = 1500


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """IMAGES real test images as PNG (a third in a sub-folder), a corrupt PNG, a dangling link and a FIFO."""
    root = tmp_path_factory.mktemp("photos")
    (root / "sub").mkdir()
    images = fashion_test_images()[0]
    for i in range(IMAGES):
        Image.fromarray(images[i]).save(root / ("sub" if i % 3 == 0 else "") / f"img{i:05d}.png")
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (root / "gone.png").symlink_to(root / "nowhere.png")  # listed, but nothing to read
    os.mkfifo(root / "pipe.png")  # would block a reader for ever: refused, not read
    return root


@pytest.fixture(scope="module")
def expected(folder) -> dict[str, str]:
    predictor = Predictor.from_zoo(MODEL, backend="onnxruntime")
    paths = sorted(str(p) for p in folder.rglob("img*.png"))
    return {path: result.label for path, result in zip(paths, predictor.predict(paths), strict=True)}


def _predict(*args: str) -> subprocess.Popen:
    code = blocking_prelude() + "from edgecnn.cli import main; sys.argv[0] = 'edgecnn'; main()"
    command = [sys.executable, "-c", code, "predict", f"zoo:{MODEL}", *args, "--backend", "onnxruntime"]
    return subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _finish(process: subprocess.Popen, timeout: float = 400) -> tuple[int, str]:
    try:
        _, err = process.communicate(timeout=timeout)
    finally:
        _kill_group(process)
    return process.returncode, err


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # the command and the Ray cluster it started


def _check_rows(rows: list[dict], folder: Path, expected: dict[str, str]) -> None:
    files = [row["file"] for row in rows]
    assert len(files) == len(set(files)) == IMAGES + 3  # every file once
    by_file = {row["file"]: row for row in rows}
    for path, label in expected.items():
        assert by_file[path]["label"] == label and not by_file[path]["error"], by_file[path]
    for bad in ("corrupt.png", "gone.png", "pipe.png"):
        row = by_file[str(folder / bad)]
        assert row["error"].startswith(str(folder / bad)) and row["label"] == "" and row["probability"] is None


def test_every_file_has_exactly_one_row_and_the_predictors_label(folder, expected, tmp_path):
    output = tmp_path / "rows.jsonl"
    code, err = _finish(_predict(str(folder), "--engine", "ray", "--replicas", "2", "--output", str(output)))
    assert code == 1, err  # some files failed: exit 1, as the printing command
    assert f"wrote {IMAGES + 3} row(s)" in err and "3 with an error" in err and "Traceback" not in err
    _check_rows([json.loads(line) for line in output.read_text().splitlines()], folder, expected)
    assert not (tmp_path / "rows.jsonl.parts").exists()


def test_a_run_killed_midway_resumes_and_still_writes_every_row_once(folder, expected, tmp_path):
    output = tmp_path / "rows.parquet"
    parts = tmp_path / "rows.parquet.parts"
    first = _predict(str(folder), "--engine", "ray", "--output", str(output))
    deadline = time.monotonic() + 300
    while len(list(parts.glob("part-*.jsonl"))) < 3 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    _kill_group(first)  # SIGKILL: no cleanup runs, the cluster goes with it
    first.communicate()
    kept = list(parts.glob("part-*.jsonl"))
    done = sum(len(p.read_text().splitlines()) for p in kept)
    assert kept and not output.exists() and done < IMAGES + 3, "the first run was not killed midway"

    code, err = _finish(_predict(str(folder), "--engine", "ray", "--output", str(output)))
    assert code == 1 and f"resuming: {done} of" in err, err
    import pyarrow.parquet as pq

    rows = pq.read_table(output).to_pylist()
    for row in rows:
        row["top_k"] = json.loads(row["top_k"])
    _check_rows(rows, folder, expected)


def test_an_actor_killed_midway_is_replaced_and_every_file_still_has_one_row(folder, expected, tmp_path):
    output = tmp_path / "rows.csv"
    run = _predict(str(folder), "--engine", "ray", "--replicas", "2", "--output", str(output))
    parts = tmp_path / "rows.csv.parts"
    deadline = time.monotonic() + 300
    while not list(parts.glob("part-*.jsonl")) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    actors = session_processes("ray::MapWorker", run.pid)
    assert actors and run.poll() is None, "no Ray Data actor was running midway"
    os.kill(actors[0], signal.SIGKILL)
    code, err = _finish(run)
    assert code == 1 and f"wrote {IMAGES + 3} row(s)" in err and "Traceback" not in err, err
    rows = [{**row, "top_k": json.loads(row["top_k"])} for row in csv.DictReader(output.open())]
    for row in rows:
        row["probability"] = float(row["probability"]) if row["probability"] else None
    _check_rows(rows, folder, expected)
