"""`edgecnn check` on every target with a tiny real model, the device install answering `info` and `predict`
as this machine does, a model built to saturate x86-64-v3 failing loudly there, `--record` and `edgecnn info`,
and `export`/`quantize --targets` rebuilding that model with the remedy until it passes."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from conftest import REPO, run_cli

from edgecnn.config import ExportConfig
from edgecnn.export.from_checkpoint import export_checkpoint
from edgecnn.files import file_sha256
from edgecnn.runtime.metadata import read_metadata
from edgecnn.runtime.session import open_session

sys.path.insert(0, str(REPO / "tools"))
from saturating_model import make_saturating  # noqa: E402

KERAS_VALID = REPO / "models" / "keras_valid" / "keras_valid.fp32.onnx"


@pytest.fixture(scope="module")
def tiny(checkpoints, tmp_path_factory):
    """The tiny net (one epoch on real MNIST), exported fp32 and static int8."""
    out = tmp_path_factory.mktemp("check-tiny")
    quick = dict(parity_samples=300, latency_iters=3)
    export_checkpoint(checkpoints("tiny"), out / "tiny.fp32.onnx", ExportConfig(**quick))
    export_checkpoint(checkpoints("tiny"), out / "tiny.int8.onnx", ExportConfig(quantize="static", **quick))
    return out


@pytest.fixture(scope="module")
def saturating(tmp_path_factory):
    """keras_valid from the zoo, rewritten to the same function with a stem that saturates u8×s8 pairs."""
    out = tmp_path_factory.mktemp("saturating") / "sat.fp32.onnx"
    make_saturating(KERAS_VALID, out, offset=0.5)
    return out


def _vnni() -> bool:
    """Whether this CPU has VNNI (onnxruntime's int8 kernels then add u8×s8 products in 32 bits)."""
    flags = Path("/proc/cpuinfo").read_text().split()
    return "avx512_vnni" in flags or "avx_vnni" in flags


def check(*args: str) -> tuple[int, dict, str]:
    done = run_cli("check", *args, "--json")
    return done.returncode, json.loads(done.stdout) if done.stdout else {}, done.stderr


def test_check_runs_a_tiny_model_on_every_target_and_the_device_install_answers_as_here(ready_targets, tiny):
    for variant in ("fp32", "int8"):
        code, report, err = check(str(tiny / f"tiny.{variant}.onnx"), "--targets", "all", "--samples", "300")
        assert code == 0, err
        rows = {row["target"]: row for row in report["targets"]}
        assert list(rows) == ready_targets and all(row["passed"] for row in rows.values())
        assert report["precision"] == ("f32" if variant == "fp32" else "int8") and report["samples"] == 300
        assert rows["aarch64-a72"]["machine"] == rows["aarch64-a76"]["machine"] == "aarch64"
        assert rows["wasm"]["runtime"] == "onnxruntime-web" and rows["x86-64-v3"]["cpu"] == "Haswell"
        for name in ("aarch64-a72", "aarch64-a76"):
            assert rows[name]["device"] == {"info": "same as here", "predict": "same as here"}
        if variant == "fp32":  # the exact gates: every target within rounding noise of this machine
            assert all(row["max_abs"] <= 1e-4 and row["agreement"] == 1.0 for row in rows.values())
    assert "check: wasm: passed" in err


def test_a_model_built_to_saturate_fails_on_x86_64_v3_naming_it(ready_targets, saturating, tmp_path):
    int8 = tmp_path / "sat.int8.onnx"
    done = run_cli("quantize", str(saturating), "--mode", "static", "--out", str(int8), "--parity-samples", "1000")
    if not _vnni():  # this machine adds u8×s8 pairs in 16 bits too: the gate here refuses the file already
        assert done.returncode == 1 and "top-1 agreement" in done.stderr
        return
    assert done.returncode == 0, done.stderr
    code, report, err = check(
        str(int8), "--targets", "x86-64-v3,wasm", "--samples", "500", "--reference", str(saturating)
    )
    rows = {row["target"]: row for row in report["targets"]}
    assert code == 1 and not rows["x86-64-v3"]["passed"] and rows["wasm"]["passed"]
    assert rows["x86-64-v3"]["agreement"] < 0.95 and rows["x86-64-v3"]["max_abs_native"] > 1.0
    line = err.strip().splitlines()[-1]
    assert line.startswith("edgecnn: error: ") and "fails on 1 target(s): x86-64-v3: top-1 agreement" in line


def test_quantize_with_targets_rebuilds_the_saturating_model_with_a_remedy_and_records_it(
    ready_targets, saturating, tmp_path
):
    out = tmp_path / "fixed.int8.onnx"
    done = run_cli(
        "quantize", str(saturating), "--mode", "static", "--targets", "x86-64-v3", "--out", str(out),
        "--parity-samples", "1000", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    verdict = report["targets"]["static"]
    assert verdict["passed"] and verdict["remedy"] in ("int7", "uint8")
    assert verdict["tried"][0] == {**verdict["tried"][0], "weights": None, "passed": False}
    assert "x86-64-v3" in verdict["tried"][0]["failing"]
    assert {row["target"]: row["passed"] for row in verdict["targets"]} == {"native": True, "x86-64-v3": True}
    meta = read_metadata(open_session(out))
    assert meta.quantization["weights"] == verdict["remedy"] and meta.quantization["targets_remedy"]
    assert set(meta.targets) == {"native", "x86-64-v3"} and meta.targets["x86-64-v3"]["passed"] is True
    shown = run_cli("info", str(out))
    assert "checked on      x86-64-v3: passed" in shown.stdout


def test_record_writes_the_rows_into_the_file_and_refuses_the_zoo(ready_targets, tiny, tmp_path):
    model = tmp_path / "tiny.int8.onnx"
    shutil.copyfile(tiny / "tiny.int8.onnx", model)
    code, report, err = check(str(model), "--targets", "native,wasm", "--samples", "200", "--record")
    assert code == 0, err
    meta = read_metadata(open_session(model))
    assert set(meta.targets) == {"native", "wasm"} and meta.targets["wasm"]["samples"] == 200
    assert meta.targets["wasm"]["runtime"] == "onnxruntime-web" and meta.targets["native"]["data"] == "mnist"
    assert report["sha256"] != file_sha256(model)  # the file changed after the check: its record is in it
    refused = run_cli("check", "zoo:keras_same", "--targets", "native", "--record")
    assert refused.returncode == 1 and "--record writes into the file: give a path" in refused.stderr


def test_a_target_not_ready_is_a_failing_row_with_the_command_that_makes_it(tiny, tmp_path):
    done = run_cli(
        "check", str(tiny / "tiny.fp32.onnx"), "--targets", "native,wasm", "--samples", "50", "--json",
        env={"EDGECNN_TARGETS": str(tmp_path / "none")},
    )  # fmt: skip
    rows = {row["target"]: row for row in json.loads(done.stdout)["targets"]}
    assert done.returncode == 1 and rows["native"]["passed"] and not rows["wasm"]["passed"]
    assert "edgecnn targets setup wasm" in rows["wasm"]["failures"][0]
    assert done.stderr.strip().splitlines()[-1].startswith("edgecnn: error: ")
    out = tmp_path / "never.onnx"  # export and quantize say so before building anything, and write nothing
    for targets in ("wasm", "native,bogus"):
        refused = run_cli(
            "quantize", str(tiny / "tiny.fp32.onnx"), "--mode", "static", "--targets", targets, "--out", str(out),
            env={"EDGECNN_TARGETS": str(tmp_path / "none")},
        )  # fmt: skip
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and not out.exists()
        assert (
            ("not ready here" in refused.stderr) if targets == "wasm" else ("unknown target 'bogus'" in refused.stderr)
        )


def test_check_needs_labelled_data_it_can_read(tiny, tmp_path):
    done = run_cli("check", str(tiny / "tiny.fp32.onnx"), "--targets", "native", "--data", "fashion-mnist")
    assert done.returncode == 1 and "classes" in done.stderr and "Traceback" not in done.stderr
    done = run_cli("check", str(tiny / "tiny.fp32.onnx"), "--targets", "native", "--samples", "20000")
    assert done.returncode == 1 and "has 10000 readable test images; --samples asks for 20000" in done.stderr
