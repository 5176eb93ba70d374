"""`edgecnn zoo` and zoo:NAME as the MODEL of predict / info / bench / quantize, as a device install runs
them (torch, torchvision, onnx and matplotlib blocked), on a small real zoo built here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_cli
from PIL import Image

from edgecnn.config import ExportConfig
from edgecnn.export.from_checkpoint import export_checkpoint
from edgecnn.files import write_json
from edgecnn.runtime import Predictor
from edgecnn.runtime.zoo import resolve_zoo
from edgecnn.runtime.zoo_index import INDEX_NAME, ZooEntry, build_index

NAME = "testnet"  # not a name the real zoo uses


@pytest.fixture(scope="module")
def zoo(checkpoints, tmp_path_factory):
    """A zoo folder with the tiny net (trained on real MNIST) exported fp32 and static int8, and its index."""
    folder = tmp_path_factory.mktemp("zoo")
    paths = {variant: f"{NAME}/{NAME}.{variant}.onnx" for variant in ("fp32", "int8")}
    quick = dict(parity_samples=300, latency_iters=3)
    export_checkpoint(checkpoints("tiny"), folder / paths["fp32"], ExportConfig(**quick))
    export_checkpoint(checkpoints("tiny"), folder / paths["int8"], ExportConfig(quantize="static", **quick))
    entry = ZooEntry(NAME, "mnist", "the tiny test net", "int8", paths, "static", {"int8": 0.5})
    write_json(folder / INDEX_NAME, build_index(folder, [entry]).to_dict())
    return folder


@pytest.fixture
def copy(zoo, tmp_path):
    """A zoo of this test's own, to damage."""
    return Path(shutil.copytree(zoo, tmp_path / "zoo"))


@pytest.fixture(scope="module")
def digit(zoo, mnist, tmp_path_factory):
    """A real MNIST test digit as a PNG, and what the int8 file says it is."""
    path = tmp_path_factory.mktemp("digit") / "digit.png"
    Image.fromarray(mnist.test_images[0, 0].numpy()).save(path)
    return path, Predictor(zoo / NAME / f"{NAME}.int8.onnx").predict(Image.open(path))[0].label


def _one_error_line(proc) -> str:
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("edgecnn: error: ")
    return line


def test_zoo_lists_the_models_as_json_and_text(zoo):
    listed = json.loads(run_cli("zoo", "--json", "--zoo-dir", str(zoo), block_torch=True).stdout)
    assert listed["searched"] == [str(zoo)]
    (net,) = listed["nets"]
    assert net["name"] == NAME and net["available"] == ["fp32", "int8"] and net["default"] == "int8"
    assert net["variants"]["int8"]["path"] == str(zoo / NAME / f"{NAME}.int8.onnx")
    text = run_cli("zoo", env={"EDGECNN_ZOO": str(zoo)}, block_torch=True)
    assert text.returncode == 0, text.stderr
    assert f"{NAME}" in text.stdout and "int8* " in text.stdout and "50.00%" in text.stdout
    assert f"zoo: {zoo}" in text.stdout


def test_predict_info_and_bench_take_a_zoo_name(zoo, digit):
    image, label = digit
    by_option = run_cli("predict", f"zoo:{NAME}", str(image), "--zoo-dir", str(zoo), block_torch=True)
    assert by_option.returncode == 0, by_option.stderr
    assert by_option.stdout.startswith(f"{image}: {label} (")
    by_env = run_cli(
        "predict", f"zoo:{NAME}:fp32", str(image), "--json", env={"EDGECNN_ZOO": str(zoo)}, block_torch=True
    )
    assert by_env.returncode == 0 and json.loads(by_env.stdout)[0]["file"] == str(image)
    shown = run_cli("info", f"zoo:{NAME}:fp32", "--json", "--zoo-dir", str(zoo), block_torch=True)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["file"] == str(zoo / NAME / f"{NAME}.fp32.onnx")
    quick = ("--iters", "5", "--warmup", "1", "--cold-runs", "0", "--batch-sizes", "1")
    bench = run_cli("bench", f"zoo:{NAME}", f"zoo:{NAME}:fp32", *quick, "--zoo-dir", str(zoo), block_torch=True)
    assert bench.returncode == 0, bench.stderr
    assert f"{NAME}.int8.onnx" in bench.stdout and f"{NAME}.fp32.onnx" in bench.stdout


def test_a_tampered_zoo_file_is_one_error_line(copy, digit):
    path = copy / NAME / f"{NAME}.int8.onnx"
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    for args in (
        ("predict", f"zoo:{NAME}", str(digit[0])),
        ("info", f"zoo:{NAME}:int8"),
        ("bench", f"zoo:{NAME}", "--iters", "5"),
    ):
        line = _one_error_line(run_cli(*args, "--zoo-dir", str(copy), block_torch=True))
        assert f"{path} fails its SHA-256 check (expected " in line and "a damaged or tampered copy" in line


def test_unknown_names_and_missing_variants_are_one_error_line(copy, digit):
    line = _one_error_line(run_cli("predict", "zoo:nope", str(digit[0]), "--zoo-dir", str(copy), block_torch=True))
    assert f"unknown zoo model 'nope'; known: {NAME}" in line
    line = _one_error_line(run_cli("info", f"zoo:{NAME}:fp16", "--zoo-dir", str(copy), block_torch=True))
    assert "the variants are fp32, int8" in line
    (copy / NAME / f"{NAME}.fp32.onnx").unlink()  # what a wheel install holds: the index and the int8 files
    line = _one_error_line(run_cli("info", f"zoo:{NAME}:fp32", "--zoo-dir", str(copy), block_torch=True))
    assert "the wheel ships only the int8 and the default models" in line and "EDGECNN_ZOO" in line
    assert run_cli("info", f"zoo:{NAME}", "--zoo-dir", str(copy), block_torch=True).returncode == 0


def test_quantize_reads_the_zoo_fp32_and_writes_only_to_out(copy, tmp_path):
    inside = _one_error_line(
        run_cli("quantize", f"zoo:{NAME}", "--out", str(copy / NAME / "q.onnx"), "--zoo-dir", str(copy))
    )
    assert "is inside the model zoo" in inside and not (copy / NAME / "q.onnx").exists()
    before = sorted(p.name for p in (copy / NAME).iterdir())
    out = tmp_path / "out" / "q.onnx"
    quick = ("--mode", "static", "--parity-samples", "300", "--latency-iters", "3", "--calibration-samples", "100")
    proc = run_cli("quantize", f"zoo:{NAME}", "--out", str(out), "--zoo-dir", str(copy), "--json", *quick)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert out.is_file() and report["mode"] == "static"
    assert sorted(p.name for p in (copy / NAME).iterdir()) == before  # nothing written into the zoo
    resolve_zoo(f"zoo:{NAME}:fp32", copy)  # and its files still pass their checks
    text = run_cli("quantize", f"zoo:{NAME}", "--out", str(tmp_path / "t.onnx"), "--zoo-dir", str(copy), *quick)
    assert text.returncode == 0, text.stderr
    kept = report["settings"]["calibration"]["method"]
    assert f"calibration: {kept} (tried minmax " in text.stdout and "entropy" in text.stdout  # the card says which
