"""Quantization modes are a registry: a new mode is one entry, built, gated and offered by auto."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgecnn.config import ExportConfig
from edgecnn.errors import ConfigError, ParityError
from edgecnn.export import modes
from edgecnn.export.built import Built
from edgecnn.export.from_checkpoint import export_checkpoint
from edgecnn.export.modes import QuantMode, auto_candidates, get_mode, list_modes, register_mode
from edgecnn.runtime import Predictor

QUICK = dict(parity_samples=500, latency_iters=3)


def _copy(src, dst, context):
    """A toy 'mode' that keeps the fp32 graph: passes the exact gates."""
    shutil.copyfile(src, dst)
    return Built({"toy": True, "input": context.input_name})


def _noisy(src, dst, context):
    """A toy mode that damages the weights: must fail its gates, and auto must refuse it."""
    model = onnx.load(str(src))
    for init in model.graph.initializer:
        array = numpy_helper.to_array(init)
        if array.ndim == 4:  # conv weights
            noise = np.random.default_rng(0).standard_normal(array.shape).astype(array.dtype)
            init.CopyFrom(numpy_helper.from_array(array + 2 * np.abs(array).mean() * noise, init.name))
    onnx.save(model, str(dst))
    return Built({"noise": 2.0})


@pytest.fixture
def toy_modes(monkeypatch):
    monkeypatch.setattr(modes, "_MODES", dict(modes._MODES))  # the registry as it was, after the test
    register_mode(QuantMode("toycopy", _copy, "fp32 under another name", exact=True, in_auto=True))
    register_mode(QuantMode("toynoise", _noisy, "damaged weights", in_auto=True))


def test_the_registry_holds_the_built_in_modes_and_refuses_duplicates():
    assert list_modes()[:4] == ["none", "dynamic", "static", "fp16"]
    assert auto_candidates() == ["none", "dynamic", "static"] and get_mode("none").exact
    with pytest.raises(ValueError, match="already registered"):
        register_mode(QuantMode("static", _copy, "again"))
    with pytest.raises(ConfigError, match="none, dynamic, static, fp16, auto"):
        get_mode("int4")


def test_a_toy_mode_is_registered_built_gated_and_offered_by_auto(toy_modes, checkpoints, tmp_path):
    ckpt = checkpoints("keras_valid")
    report = export_checkpoint(ckpt, tmp_path / "toy.onnx", ExportConfig(quantize="toycopy", **QUICK))
    assert report.mode == "toycopy" and report.settings == {"mode": "toycopy", "toy": True, "input": "input"}
    assert report.parity.passed and report.parity.gates.max_abs == 1e-4  # its exact gates were applied
    assert Predictor(tmp_path / "toy.onnx").metadata.quantization["mode"] == "toycopy"
    with pytest.raises(ParityError) as info:
        export_checkpoint(ckpt, tmp_path / "noisy.onnx", ExportConfig(quantize="toynoise", **QUICK))
    assert info.value.report.gates.max_accuracy_drop_pp == 0.3 and not (tmp_path / "noisy.onnx").exists()
    auto = export_checkpoint(ckpt, tmp_path / "auto.onnx", ExportConfig(quantize="auto", **QUICK)).auto
    rows = {row.candidate: row for row in auto.table}
    assert {"toycopy", "toynoise"} <= set(rows)
    assert rows["toycopy"].passes_gates and rows["toycopy"].max_abs == 0.0  # eligible only if measured faster
    assert not rows["toynoise"].passes_gates and auto.chosen != "toynoise"


def test_a_drop_exactly_at_the_budget_passes_and_nan_never_does():
    from edgecnn.runtime.gates import gates_for

    gates = gates_for(False, 0.3)
    assert gates.failures(max_abs=1.0, agreement=0.995, reference_accuracy=0.777, accuracy=0.774) == []
    assert gates.failures(max_abs=1.0, agreement=0.995, reference_accuracy=0.777, accuracy=0.773)
    exact = gates_for(True, 0.3)
    assert exact.failures(max_abs=float("nan"), agreement=1.0, reference_accuracy=0.9, accuracy=0.9)
