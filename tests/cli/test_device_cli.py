"""The CLI as a device install runs it: torch, torchvision, onnx and matplotlib all unimportable."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, blocking_prelude, run_cli
from PIL import Image

from edgecnn.config import ExportConfig
from edgecnn.errors import ProviderError
from edgecnn.export.from_checkpoint import export_checkpoint


@pytest.fixture(scope="module")
def digits(checkpoints, tmp_path_factory):
    out = tmp_path_factory.mktemp("device") / "digits.onnx"
    export_checkpoint(checkpoints("fashion_bn"), out, ExportConfig(parity_samples=500, latency_iters=3))
    return out


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--out", "x"],
        ["archs"],
        ["export", "ckpt", "--out", "m.onnx"],
        ["verify", "ckpt", "m.onnx"],
        ["bench", "m.onnx", "--torch", "ckpt"],
        ["bench", "m.onnx", "--plot", "p.png"],
        ["quantize", "m.onnx", "--out", "q.onnx"],
    ],
)
def test_training_side_commands_name_their_extra_in_one_line(args, tmp_path):
    proc = run_cli(*args, block_torch=True, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == "", proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgecnn: error: ") and "pip install 'edgecnn[" in lines[0]
    assert "Traceback" not in proc.stderr


def test_help_marks_what_needs_an_extra():
    shown = run_cli("--help", block_torch=True).stdout
    for command, extra in (("train", "train"), ("export", "train"), ("quantize", "quantize")):
        line = next(line for line in shown.splitlines() if line.strip().startswith(command + " "))
        assert f"[{extra}]" in line
    predict = next(line for line in shown.splitlines() if line.strip().startswith("predict "))
    assert "[" not in predict


def _pngs(folder, mnist, count, start=0):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        Image.fromarray(mnist.test_images[i, 0].numpy()).save(folder / f"{i:03d}.png")


def test_predict_folders_recursively_sorted_and_paths_from_stdin(digits, mnist, tmp_path):
    _pngs(tmp_path / "b", mnist, 3, start=3)
    _pngs(tmp_path / "a" / "deeper", mnist, 3)
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    proc = run_cli("predict", str(digits), str(tmp_path), "--json", block_torch=True)
    assert proc.returncode == 0, proc.stderr
    files = [r["file"] for r in json.loads(proc.stdout)]
    assert files == sorted(files) and len(files) == 6 and all(f.endswith(".png") for f in files)
    labels = [r["label"] for r in json.loads(proc.stdout)]
    assert sum(label == str(int(mnist.test_labels[int(f[-7:-4])])) for label, f in zip(labels, files, strict=True)) >= 5
    listing = "\n".join(files[:2]) + "\n\n"
    code = blocking_prelude() + "from edgecnn.cli import main; sys.argv[0] = 'edgecnn'; main()"
    piped = subprocess.run(
        [sys.executable, "-c", code, "predict", str(digits), "-", "--fit", "stretch"],
        input=listing,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=os.environ,
        timeout=300,
    )
    assert piped.returncode == 0, piped.stderr
    assert [line.split(":")[0] for line in piped.stdout.splitlines()] == files[:2]
    empty = run_cli("predict", str(digits), str(tmp_path / "a" / "deeper" / ".."), "--json", block_torch=True)
    assert empty.returncode == 0
    nothing = run_cli("predict", str(digits), str(tmp_path / "b" / "none"), block_torch=True)
    assert nothing.returncode == 1


def test_cuda_without_cuda_and_allow_fallback(digits, mnist, tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime offers CUDA; the refusal is tested where it does not")
    _pngs(tmp_path, mnist, 1)
    refused = run_cli("predict", str(digits), str(tmp_path), "--provider", "cuda", block_torch=True)
    assert refused.returncode == 1 and "allow_fallback" in refused.stderr and len(refused.stderr.splitlines()) == 1
    allowed = run_cli("predict", str(digits), str(tmp_path), "--provider", "cuda", "--allow-fallback", block_torch=True)
    assert allowed.returncode == 0 and allowed.stdout.count("\n") == 1
    assert "running on the CPU" in allowed.stderr


def test_two_onnxruntime_builds_are_refused_with_the_fix(digits, monkeypatch):
    from edgecnn.runtime import install
    from edgecnn.runtime.predictor import Predictor

    monkeypatch.setattr(
        install, "onnxruntime_distributions", lambda: {"onnxruntime": "1.32.0", "onnxruntime-gpu": "1.31.1"}
    )
    install.require_onnxruntime.cache_clear()
    try:
        with pytest.raises(ProviderError, match="pip uninstall -y onnxruntime onnxruntime-gpu"):
            Predictor(digits)
    finally:
        install.require_onnxruntime.cache_clear()
    monkeypatch.undo()
    assert Predictor(digits).provider == "cpu"


_NO_ORT_DISTRIBUTIONS = (
    "import importlib.metadata as m\n"
    "_version = m.version\n"
    "def _no_ort(name):\n"
    "    if name.startswith('onnxruntime'):\n"
    "        raise m.PackageNotFoundError(name)\n"
    "    return _version(name)\n"
    "m.version = _no_ort\n"
)


@pytest.mark.parametrize("installed", [False, True])
def test_no_or_a_broken_onnxruntime_is_one_line_with_the_fix(digits, installed):
    """Without any onnxruntime build: which extra to install. With one that does not import: which."""
    prelude = blocking_prelude(("torch", "onnxruntime")) + ("" if installed else _NO_ORT_DISTRIBUTIONS)
    code = prelude + "from edgecnn.cli import main; sys.argv[0] = 'edgecnn'; main()"
    proc = subprocess.run(
        [sys.executable, "-c", code, "info", str(digits)], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    if installed:
        assert "is installed but does not import" in proc.stderr and "pip install" in proc.stderr
    else:
        assert "onnxruntime is not installed; pip install 'edgecnn[cpu]'" in proc.stderr
