"""Static calibration "auto": minmax, percentile and entropy each gated on real images, the most accurate
that passes kept, and the report card, the metadata and any refusal say which and what was tried."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import run_cli

from edgecnn.config import CALIBRATION_METHODS, ExportConfig, QuantizeConfig
from edgecnn.errors import ConfigError, ParityError
from edgecnn.export import calibrate
from edgecnn.export.built import Built
from edgecnn.export.calibrate import TRIED_METHODS, Attempt, keep_best
from edgecnn.export.from_checkpoint import export_checkpoint
from edgecnn.export.gates import ParityReport
from edgecnn.files import report_path
from edgecnn.runtime.gates import Gates
from edgecnn.runtime.metadata import read_metadata
from edgecnn.runtime.session import open_session

QUICK = dict(parity_samples=1000, latency_iters=3)


@pytest.fixture(scope="module")
def keras_same(checkpoints):
    """One epoch of keras_same on Fashion-MNIST: the net issue 12 found minmax leaves under 99 % agreement."""
    return checkpoints("keras_same", "fashion-mnist")


def _attempt(method: str, accuracy: float, agreement: float, passed: bool = True) -> Attempt:
    report = ParityReport(
        samples=1000,
        batch_sizes={},
        max_abs=0.5,
        top1_agreement=agreement,
        reference_accuracy=0.8,
        onnx_accuracy=accuracy,
        gates=Gates(min_agreement=0.99, max_accuracy_drop_pp=0.3),
        failures=() if passed else ("top-1 agreement below the gate",),
    )
    return Attempt(method, Path(f"{method}.onnx"), Built({}), report)


def test_keep_best_is_the_most_accurate_passing_then_agreement_then_order():
    assert TRIED_METHODS == ("minmax", "percentile", "entropy")
    best = [_attempt("minmax", 0.9, 0.999, passed=False), _attempt("percentile", 0.80, 0.995)]
    assert keep_best([*best, _attempt("entropy", 0.81, 0.991)]).method == "entropy"  # a failing one: never kept
    tie = keep_best(
        [_attempt("minmax", 0.8, 0.993), _attempt("percentile", 0.8, 0.996), _attempt("entropy", 0.8, 0.995)]
    )
    assert tie.method == "percentile"
    same = [_attempt(m, 0.8, 0.995) for m in TRIED_METHODS]
    assert keep_best(same).method == "minmax" and keep_best(same[::-1]).method == "minmax"
    none = [
        _attempt(m, accuracy, 0.9, passed=False) for m, accuracy in zip(TRIED_METHODS, (0.70, 0.72, 0.71), strict=True)
    ]
    assert keep_best(none).method == "percentile"  # kept to be refused by the gate, naming every method


def test_auto_keeps_a_passing_method_and_the_card_and_metadata_list_what_was_tried(keras_same, tmp_path):
    out = tmp_path / "static.onnx"
    # measured on 1,000 images vs torch: minmax and entropy 98.8 % agreement (under the 99 % gate), percentile
    # 99.1 % and a 0.4 pp drop: within a 1 pp budget, percentile is the one that passes
    config = ExportConfig(quantize="static", max_accuracy_drop=1.0, **QUICK)  # calibration_method: auto, the default
    report = export_checkpoint(keras_same, out, config)
    calibration = report.settings["calibration"]
    tried = calibration["tried"]
    assert [row["method"] for row in tried] == ["minmax", "percentile", "entropy"]
    assert all(set(row) == {"method", "accuracy", "top1_agreement", "passed"} for row in tried)
    kept = next(row for row in tried if row["method"] == calibration["method"])
    assert kept["passed"] and report.parity.passed and report.mode == "static"
    assert kept["accuracy"] == max(row["accuracy"] for row in tried if row["passed"])
    # the figures are the gate's own: the final gate measured the kept variant the same
    assert (kept["accuracy"], kept["top1_agreement"]) == (report.parity.onnx_accuracy, report.parity.top1_agreement)
    assert calibration["samples"] == 500 and calibration["seed"] == 0 and len(calibration["manifest_sha256"]) == 64
    assert "most accurate" in calibration["rule"]
    assert read_metadata(open_session(out)).quantization["calibration"] == calibration
    assert json.loads(report_path(out).read_text())["settings"]["calibration"] == calibration
    assert sorted(p.name for p in tmp_path.iterdir()) == ["static.onnx", "static.report.json"]


def test_a_named_method_is_used_alone(checkpoints, tmp_path, monkeypatch):
    from edgecnn.export.judge import Judge

    methods, measured = [], []
    quantize, measure = calibrate.quantize_static_int8, Judge.measure
    monkeypatch.setattr(
        calibrate, "quantize_static_int8", lambda *a, **k: methods.append(k["method"]) or quantize(*a, **k)
    )
    monkeypatch.setattr(Judge, "measure", lambda self, path, **k: measured.append(path) or measure(self, path, **k))
    report = export_checkpoint(
        checkpoints("tiny"), tmp_path / "m.onnx", ExportConfig(quantize="static", calibration_method="minmax", **QUICK)
    )
    assert methods == ["minmax"] and len(measured) == 1  # built once, and gated once: by the export's own gate
    assert report.settings["calibration"]["method"] == "minmax" and "tried" not in report.settings["calibration"]


def test_when_no_method_passes_the_error_names_each_and_nothing_is_written(keras_same, tmp_path):
    # one calibration image clips most activations (measured: ~90 % agreement) and the budget is 0 pp
    config = ExportConfig(quantize="static", calibration_samples=1, max_accuracy_drop=0, **QUICK)
    with pytest.raises(ParityError) as info:
        export_checkpoint(keras_same, tmp_path / "m.onnx", config)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'm.onnx'} not written: static disagrees with torch on 1000 test images")
    figures = r"[\d.]+% accuracy, [\d.]+% agreement, failed"
    assert re.search(rf"minmax {figures}; percentile {figures}; entropy {figures}\)$", message), message
    assert "\n" not in message and info.value.report is not None and not info.value.report.passed
    assert list(tmp_path.iterdir()) == []


def test_auto_quantization_measures_static_through_the_same_calibration(keras_same, tmp_path, monkeypatch):
    tried = []
    real = calibrate.keep_best
    monkeypatch.setattr(
        calibrate, "keep_best", lambda attempts: tried.append([a.method for a in attempts]) or real(attempts)
    )
    report = export_checkpoint(keras_same, tmp_path / "a.onnx", ExportConfig(quantize="auto", **QUICK))
    assert tried == [list(TRIED_METHODS)]
    assert "static" in [row.candidate for row in report.auto.table]
    if report.mode == "static":
        assert [row["method"] for row in report.settings["calibration"]["tried"]] == list(TRIED_METHODS)


def test_configs_default_to_auto_take_each_method_and_refuse_others():
    assert ExportConfig().calibration_method == QuantizeConfig().calibration_method == "auto"
    assert CALIBRATION_METHODS[1:] == TRIED_METHODS and CALIBRATION_METHODS[0] == "auto"
    for method in CALIBRATION_METHODS:
        assert ExportConfig(calibration_method=method).calibration_method == method
        assert QuantizeConfig(calibration_method=method).calibration_method == method
    for config in (ExportConfig, QuantizeConfig):
        with pytest.raises(ConfigError, match="calibration_method must be one of auto, minmax, percentile, entropy"):
            config(calibration_method="kl")
    for command in ("export", "quantize"):
        shown = run_cli(command, "--help", block_torch=True)
        assert shown.returncode == 0 and "[auto|minmax|percentile|entropy]" in shown.stdout
