"""The targets registry, their set-up (idempotent, from scratch for the cheap ones, the device install refreshed
when the checkout changes) and the tier-0 metadata rewrite ``--record`` uses, on the real targets tools/test.sh
made (QEMU user mode, the Debian arm64 root, onnxruntime-web under Node)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from edgecnn.errors import ConfigError, ModelFileError, TargetError
from edgecnn.runtime.metadata import PREFIX, read_metadata
from edgecnn.runtime.metadata_edit import record_targets, replace_entries
from edgecnn.runtime.session import open_session
from edgecnn.runtime.target_run import target_logits
from edgecnn.runtime.targets import (
    DEVICE_STAMP,
    DEVICE_VENV,
    arm64_root,
    get_target,
    list_targets,
    parse_targets,
    readiness,
)

ZOO_INT8 = Path(__file__).resolve().parents[2] / "models" / "keras_same" / "keras_same.int8.onnx"


def test_the_registry_names_each_target_and_refuses_unknown_ones():
    assert list_targets() == ["native", "x86-64-v3", "aarch64-a72", "aarch64-a76", "wasm"]
    assert [t.name for t in parse_targets("wasm, native")] == ["native", "wasm"]  # registry order, once each
    assert [t.name for t in parse_targets("all")] == list_targets()
    assert get_target("aarch64-a72").cpu == "cortex-a72" and get_target("x86-64-v3").cpu == "Haswell"
    with pytest.raises(ConfigError, match="unknown target 'riscv'.*native, x86-64-v3"):
        parse_targets("native,riscv")
    done = run_cli("check", str(ZOO_INT8), "--targets", "pdp11")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "unknown target 'pdp11'" in done.stderr


def test_every_target_is_ready_after_setup_and_a_second_setup_changes_nothing(ready_targets):
    done = run_cli("targets", "--json")
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert done.returncode == 0 and all(row["ready"] for row in rows.values()), rows
    assert rows["aarch64-a76"]["cpu"] == "cortex-a76" and rows["wasm"]["runtime"] == "onnxruntime-web"
    stamp = arm64_root() / DEVICE_VENV.lstrip("/") / DEVICE_STAMP
    before = (stamp.stat().st_mtime_ns, (arm64_root() / "usr").stat().st_mtime_ns)
    again = run_cli("targets", "setup")
    assert again.returncode == 0, again.stderr
    assert again.stderr.splitlines() == [f"{name}: ready" for name in list_targets()]
    assert (stamp.stat().st_mtime_ns, (arm64_root() / "usr").stat().st_mtime_ns) == before


def test_wasm_is_set_up_from_scratch_in_an_empty_folder_and_runs_a_model(ready_targets, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECNN_TARGETS", str(tmp_path / "targets"))
    wasm = get_target("wasm")
    state = readiness(wasm)
    assert not state.ready and state.make.startswith("edgecnn targets setup wasm")
    with pytest.raises(TargetError, match="wasm is not ready here: onnxruntime-web is not installed"):
        target_logits(wasm, ZOO_INT8, np.zeros((2, 1, 28, 28), np.float32), 2)
    done = run_cli("targets", "setup", "wasm", env={"EDGECNN_TARGETS": str(tmp_path / "targets")})
    assert done.returncode == 0 and "wasm: ready (onnxruntime-web 1." in done.stderr, done.stderr
    feed = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    logits, facts = target_logits(wasm, ZOO_INT8, feed, 2)  # batches of 2: an odd remainder too
    session = open_session(ZOO_INT8)
    here = session.run(None, {session.get_inputs()[0].name: feed})[0]
    assert facts["runtime"] == "onnxruntime-web" and logits.shape == here.shape
    assert np.array_equal(logits.argmax(1), here.argmax(1)) and np.abs(logits - here).max() < 0.1


def test_a_changed_checkout_makes_the_device_install_stale_and_setup_refreshes_only_it(ready_targets):
    stamp = arm64_root() / DEVICE_VENV.lstrip("/") / DEVICE_STAMP
    current = stamp.read_text()
    stamp.write_text("0" * 64 + "\n")  # as if the sources had changed since the install
    try:
        state = readiness(get_target("aarch64-a72"))
        assert not state.ready and "another edgecnn than this one" in state.why
        done = run_cli("targets", "setup", "aarch64-a72")
        assert done.returncode == 0, done.stderr
        assert "building the edgecnn wheel" in done.stderr and "debootstrap" not in done.stderr
        assert stamp.read_text() == current and readiness(get_target("aarch64-a76")).ready
    finally:
        if stamp.read_text() != current:
            stamp.write_text(current)


def test_the_aarch64_targets_run_an_aarch64_python_in_the_root(ready_targets):
    feed = np.random.default_rng(1).random((3, 1, 28, 28), dtype=np.float32)
    logits, facts = target_logits(get_target("aarch64-a72"), ZOO_INT8, feed, 3)
    assert facts["machine"] == "aarch64" and facts["runtime"] == "onnxruntime" and logits.shape == (3, 10)
    assert not list((arm64_root() / "tmp").glob("edgecnn-target-*"))  # the workspace is gone


@settings(max_examples=40)
@given(st.dictionaries(st.sampled_from(["edgecnn.targets", "edgecnn.extra", "x"]), st.text(max_size=40), max_size=3))
def test_replace_entries_sets_each_key_once_and_keeps_the_rest(tmp_path_factory, entries):
    data = ZOO_INT8.read_bytes()
    once = replace_entries(data, entries)
    assert replace_entries(once, entries) == once  # replaced, never duplicated
    path = tmp_path_factory.mktemp("edit") / "m.onnx"
    path.write_bytes(once)
    props = open_session(path).get_modelmeta().custom_metadata_map
    original = open_session(ZOO_INT8).get_modelmeta().custom_metadata_map
    assert props == {**original, **entries}


def test_record_targets_merges_into_the_file_atomically_and_refuses_what_is_not_onnx(tmp_path):
    model = tmp_path / "m.onnx"
    shutil.copyfile(ZOO_INT8, model)
    before = dict(read_metadata(open_session(model)).targets)  # the zoo file's own records (build_zoo verify)
    record_targets(model, {"wasm": {"passed": True, "samples": 10}, "riscv": {"passed": True}})
    meta = record_targets(model, {"native": {"passed": False}})
    assert dict(meta.targets) == {
        **before,
        "wasm": {"passed": True, "samples": 10},
        "riscv": {"passed": True},
        "native": {"passed": False},
    }
    assert read_metadata(open_session(model)).card == read_metadata(open_session(ZOO_INT8)).card
    props = open_session(model).get_modelmeta().custom_metadata_map
    assert json.loads(props[PREFIX + "targets"])["native"] == {"passed": False}
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff" * 64)
    with pytest.raises(ModelFileError):
        record_targets(junk, {"wasm": {}})
    assert junk.read_bytes() == b"\xff" * 64 and sorted(p.name for p in tmp_path.iterdir()) == ["junk.onnx", "m.onnx"]
