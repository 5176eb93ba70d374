"""Tuning on the device (issue 23): ``edgecnn tune``, the per-machine cache, and ``backend="auto"`` decided where
the model runs — on the zoo's real files, gated on the real probe images, with a fresh cache per test."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from edgecnn.runtime import Predictor
from edgecnn.runtime import auto as auto_module
from edgecnn.runtime.fingerprint import this_machine
from edgecnn.runtime.metadata import read_metadata
from edgecnn.runtime.probe import probe_for
from edgecnn.runtime.session import open_session, physical_cores
from edgecnn.runtime.tune_cache import read_entry
from edgecnn.runtime.tuning import thread_ladder, tune
from edgecnn.runtime.zoo import resolve_zoo, zoo_variant_files

NET = "fashion_bn"  # the zoo's smallest net: a real tuning of both its variants takes about a second


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh tuning cache, tuning on (the suite turns it off for every other test)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("EDGECNN_CACHE", str(folder))
    monkeypatch.setenv("EDGECNN_TUNE", "1")
    return folder


@pytest.fixture
def count_tunings(monkeypatch):
    """How many tunings ``backend="auto"`` ran (the real tuner, counted)."""
    calls = []
    real = auto_module.tune

    def counted(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(auto_module, "tune", counted)
    return calls


def _entries(cache: Path) -> list[Path]:
    return sorted((cache / "tune").glob("*.json")) if (cache / "tune").is_dir() else []


def test_first_load_tunes_and_caches_the_next_load_reads_it(cache, count_tunings):
    first = Predictor.from_zoo(NET)
    assert count_tunings == ["static"] and first.engine.origin.startswith("tuned now on this machine")
    assert first.auto.tuning is not None and first.auto.tuning.elapsed_s <= 1.3 * 1.1
    [entry] = _entries(cache)
    assert str(entry) in first.engine.origin
    data = json.loads(entry.read_text())
    assert data["machine"] == this_machine().to_dict() and set(data["candidates"]) == {"none", "static"}
    assert data["decision"]["chosen"] == first.auto.tuning.decision.chosen

    second = Predictor.from_zoo(NET)
    assert count_tunings == ["static"], "a cache entry for this machine is used: no second tuning"
    assert second.engine.origin.startswith("tuned on this machine") and str(entry) in second.engine.origin
    assert (second.path, second.backend, second.precision) == (first.path, first.backend, first.precision)
    assert second.path.name == data["file"]
    if second.backend == "onnxruntime":  # the tuned threads are the session's (0: onnxruntime's own, one a core)
        threads = second.session.get_session_options().intra_op_num_threads
        assert (threads or physical_cores()) == data["threads"]


def test_an_entry_for_another_machine_is_ignored(cache, count_tunings, monkeypatch):
    Predictor.from_zoo(NET)
    assert len(count_tunings) == 1
    other = dataclasses.replace(this_machine(), cpu="AMD EPYC 7B13", flags=("avx2", "fma"))
    monkeypatch.setattr(auto_module, "this_machine", lambda: other)
    moved = Predictor.from_zoo(NET)
    assert len(count_tunings) == 2 and moved.engine.origin.startswith("tuned now")
    assert len(_entries(cache)) == 2, "each machine has its own entry; neither overwrites the other"


def test_a_changed_file_is_tuned_again(cache, count_tunings, tmp_path):
    model = tmp_path / "model.onnx"
    shutil.copy(resolve_zoo(f"zoo:{NET}:int8"), model)
    Predictor(model)
    [old] = _entries(cache)
    shutil.copy(resolve_zoo("zoo:keras_valid:int8"), model)  # another real model at the same path: a new SHA-256
    again = Predictor(model)
    assert len(count_tunings) == 2 and again.engine.origin.startswith("tuned now")
    assert old in _entries(cache) and len(_entries(cache)) == 2


def _recorded_on(machine: dict, dest: Path) -> Path:
    """The zoo's mnist_cnn3 int8 file with auto's recorded choice as measured on ``machine`` (metadata rewritten)."""
    import onnx

    model = onnx.load(str(resolve_zoo("zoo:mnist_cnn3:int8")))
    for prop in model.metadata_props:
        if prop.key == "edgecnn.quantization":
            quantization = json.loads(prop.value)
            quantization["auto"]["machine"] = machine
            prop.value = json.dumps(quantization, sort_keys=True)
    onnx.save(model, str(dest))
    return dest


def test_a_choice_recorded_on_another_machine_is_tuned_here_on_this_one_used_as_is(cache, count_tunings, tmp_path):
    other = dataclasses.replace(this_machine(), cpu="AMD EPYC 7B13", physical_cores=64, logical_cores=128)
    elsewhere = Predictor(_recorded_on(other.to_dict(), tmp_path / "elsewhere.onnx"))
    assert count_tunings == ["static"] and elsewhere.engine.origin.startswith("tuned now")

    here = Predictor(_recorded_on(this_machine().to_dict(), tmp_path / "here.onnx"))
    assert count_tunings == ["static"], "a choice measured on a machine with this fingerprint is not re-measured"
    assert here.engine.origin.startswith("recorded by auto at export on this machine")
    recorded = read_metadata(open_session(tmp_path / "here.onnx")).quantization["auto"]["runtime"]
    assert here.backend == recorded["backend"]


def test_tuning_off_uses_the_recorded_choice_as_is(cache, count_tunings, monkeypatch):
    monkeypatch.setenv("EDGECNN_TUNE", "0")
    off = Predictor.from_zoo(NET)
    assert not count_tunings and "not tuned here (EDGECNN_TUNE=0)" in off.engine.origin
    monkeypatch.setenv("EDGECNN_TUNE", "1")
    assert "not tuned here (tune=False)" in Predictor.from_zoo(NET, tune=False).engine.origin
    assert not count_tunings and not _entries(cache)


@contextlib.contextmanager
def _unwritable(folder: Path):
    """``folder`` made read-only — by its mode, or (for root, whom modes do not stop) the immutable flag; where
    neither holds, a cache path under a regular file, which no one can create either."""
    folder.mkdir(parents=True)
    folder.chmod(0o555)
    immutable = False
    if _writable(folder) and shutil.which("chattr"):
        immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    try:
        if _writable(folder):
            blocker = folder.parent / "a-file"
            blocker.write_text("not a folder")
            yield blocker / "cache"
        else:
            yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def _writable(folder: Path) -> bool:
    try:
        (folder / "probe").write_text("x")
    except OSError:
        return False
    (folder / "probe").unlink()
    return True


def test_a_read_only_cache_dir_degrades_to_tuned_not_cached(cache, count_tunings, tmp_path, monkeypatch, caplog):
    with _unwritable(tmp_path / "read-only") as folder:
        monkeypatch.setenv("EDGECNN_CACHE", str(folder))
        with caplog.at_level("DEBUG", logger="edgecnn.runtime.tune_cache"):
            predictor = Predictor.from_zoo(NET)
        assert "tuned, not cached" in predictor.engine.origin and predictor.auto.cache is None
        assert [r for r in caplog.records if "tuned, not cached" in r.getMessage()], "one debug line says so"
        x = predictor.prepare(np.zeros((2, 28, 28), np.uint8))
        assert predictor.logits(x).shape == (2, 10)  # and the model runs, on what the tuning chose
        Predictor.from_zoo(NET)
        assert len(count_tunings) == 2, "nothing cached: the next process tunes again"


class FakeClock:
    """Time that passes only when read: each read costs ``step`` seconds."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.mark.parametrize("budget", [0.3, 1.5])
def test_tuning_keeps_within_its_budget_on_a_fake_clock(budget):
    files = zoo_variant_files(f"zoo:{NET}")
    clock = FakeClock(step=2e-4)
    result = tune(files, "static", budget=budget, clock=clock)
    assert result.elapsed_s <= budget * 1.05, f"{result.elapsed_s:.3f} s of fake time for a {budget} s budget"
    measured = [row for row in result.decision.table if not np.isnan(row.latency_ms["1"])]
    assert {"none", "static"} <= {row.candidate for row in measured}, "the onnxruntime variants are always measured"
    if budget < 1:
        assert result.left_out, "a small budget leaves configurations out, and says which"
        assert all(why.endswith(": the budget") or "openvino" in why for why in result.left_out)
    else:
        assert len(result.decision.table) > 2


def test_an_unbounded_budget_measures_every_configuration():
    files = zoo_variant_files(f"zoo:{NET}")
    result = tune(files, "static", budget=None, batch_size_hint=8, threads=None, clock=FakeClock(1e-5))
    names = {row.candidate for row in result.decision.table}
    ladder = thread_ladder(os.cpu_count() or 1)
    assert not [why for why in result.left_out if why.endswith("the budget")]
    assert {"none", "static"} <= names
    assert any(name.startswith("static t") for name in names) or ladder == (result.decision.row.threads,)


def test_without_labelled_images_every_configuration_is_held_to_the_exact_gates(cache, tmp_path, checkpoints):
    """A model not trained on a built-in dataset: a synthetic probe, no labels, exact gates against the file."""
    from conftest import plain_torch_export

    from edgecnn.training.checkpoint import load_checkpoint

    model = load_checkpoint(checkpoints("tiny")).build_model().eval()
    path = plain_torch_export(model, tmp_path / "foreign.onnx", external_data=False)
    predictor = Predictor(path, classes=[str(i) for i in range(10)], mean=[0.1307], std=[0.3081])
    tuning = predictor.auto.tuning
    assert tuning is not None and tuning.probe.startswith("synthetic")
    for row in tuning.decision.table:
        if row.eligible:
            assert row.max_abs <= 1e-4 and row.top1_agreement == 1.0
    assert probe_for(predictor.metadata).labels is None


def test_tune_json_reports_the_decision_and_caches_it(tmp_path):
    env = {"EDGECNN_CACHE": str(tmp_path / "cache"), "EDGECNN_TUNE": "0"}
    result = run_cli(
        "tune", f"zoo:{NET}", "--budget", "2", "--batch-size-hint", "16", "--json", env=env, block_torch=True
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    decision = data["decision"]
    assert data["probe"].startswith("fashion-mnist probe (1,000 real test images)")
    assert decision["batch_size_hint"] == 16 and decision["machine"] == this_machine().to_dict()
    rows = {row["candidate"]: row for row in decision["table"]}
    chosen = rows[decision["chosen"]]
    assert chosen["eligible"] and chosen["passes_gates"] and Path(data["file"]).is_file()
    for batch in ("1", "16"):  # never slower than onnxruntime fp32, at either batch
        assert chosen["latency_ms"][batch] <= rows["none"]["latency_ms"][batch]
    assert data["elapsed_s"] <= 2 * 1.1 and data["cache_error"] == ""
    entry = json.loads(Path(data["cache"]).read_text())
    assert entry["decision"]["chosen"] == decision["chosen"] and entry["file"] == Path(data["file"]).name
    assert set(data["files"]) == {"none", "static"}
    assert read_entry(entry["candidates"], this_machine(), root=tmp_path / "cache") is not None


def test_tune_refuses_bad_options_in_one_line(tmp_path):
    result = run_cli("tune", f"zoo:{NET}", "--budget", "-1", env={"EDGECNN_CACHE": str(tmp_path)})
    assert result.returncode == 1 and "budget must be" in result.stderr and "Traceback" not in result.stderr
    missing = run_cli("tune", str(tmp_path / "nope.onnx"), env={"EDGECNN_CACHE": str(tmp_path)})
    assert missing.returncode == 1 and "no model file" in missing.stderr


DAMAGE = {
    "broken-json": lambda data: "{not json",
    "schema": lambda data: json.dumps({**data, "schema": 99}),
    "threads-type": lambda data: json.dumps({**data, "threads": "two"}),
    "unknown-backend": lambda data: json.dumps({**data, "backend": "tensorrt"}),
    "path-in-name": lambda data: json.dumps({**data, "file": "../../etc/passwd"}),
    "other-machine": lambda data: json.dumps({**data, "machine": {**data["machine"], "cpu": "another CPU"}}),
    "other-file": lambda data: json.dumps({**data, "file_sha256": "0" * 64}),
}


def test_a_damaged_or_foreign_entry_is_no_entry_and_is_replaced(cache, count_tunings):
    """Each kind of damage is no entry; the Predictor then tunes again and rewrites the entry whole."""
    Predictor.from_zoo(NET)
    [entry] = _entries(cache)
    good = json.loads(entry.read_text())
    for name, damage in DAMAGE.items():
        entry.write_text(damage(good))
        assert read_entry(good["candidates"], this_machine(), root=cache) is None, name
    again = Predictor.from_zoo(NET)  # the last damage in place: a real tuning replaces it
    assert len(count_tunings) == 2 and again.engine.origin.startswith("tuned now")
    assert json.loads(entry.read_text())["schema"] == good["schema"], "the tuning rewrote the entry whole"
    assert read_entry(good["candidates"], this_machine(), root=cache) is not None


def test_info_shows_the_decision_in_force_without_tuning(tmp_path):
    env = {"EDGECNN_CACHE": str(tmp_path / "cache"), "EDGECNN_TUNE": "1"}
    before = json.loads(run_cli("info", f"zoo:{NET}", "--json", env=env, block_torch=True).stdout)["auto_here"]
    assert before["decided"] is False and "not decided on this machine yet" in before["origin"]
    assert not (tmp_path / "cache").exists(), "info never tunes"
    assert run_cli("tune", f"zoo:{NET}", "--budget", "1", env=env).returncode == 0
    after = run_cli("info", f"zoo:{NET}", env=env, block_torch=True)
    line = next(line for line in after.stdout.splitlines() if line.startswith("auto here"))
    assert "tuned on this machine" in line and str(tmp_path / "cache") in line


@settings(max_examples=300)
@given(
    data=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6),
        max_leaves=30,
    ),
    keys=st.lists(st.sampled_from(["schema", "backend", "hint", "threads", "machine", "candidates"]), max_size=6),
)
def test_any_json_in_an_entry_is_read_as_no_entry_or_a_valid_one(data, keys):
    """Whatever JSON an entry holds (a real entry's fields overwritten with anything), reading it never raises."""
    from edgecnn.runtime.tune_cache import _parse

    real = {
        "schema": 1,
        "candidates": {"static": "a" * 64},
        "pinned_threads": None,
        "file": "m.onnx",
        "file_sha256": "a" * 64,
        "backend": "onnxruntime",
        "hint": None,
        "precision": "int8",
        "threads": 2,
        "spinning": True,
        "machine": this_machine().to_dict(),
    }
    assert _parse(real) is not None
    for key in keys:
        real[key] = data
    parsed = _parse(real)
    assert parsed is None or (isinstance(parsed.threads, int) and parsed.backend in ("onnxruntime", "openvino"))
    assert _parse(data) is None or isinstance(data, dict)


def test_a_graph_that_takes_one_image_at_a_time_is_tuned_at_batch_1(cache, tmp_path, checkpoints):
    """A foreign file exported with a fixed batch of 1 (as many exporters write one): the tuning runs the probe and
    times one image at a time, and the Predictor still answers; nothing fails at the hint batch."""
    from conftest import plain_torch_export

    from edgecnn.training.checkpoint import load_checkpoint

    model = load_checkpoint(checkpoints("tiny")).build_model().eval()
    path = plain_torch_export(model, tmp_path / "fixed.onnx", external_data=False, fixed_batch=True)
    predictor = Predictor(path, classes=[str(i) for i in range(10)], mean=[0.1307], std=[0.3081])
    tuning = predictor.auto.tuning
    assert tuning is not None and tuning.decision.batch_size_hint == 1, predictor.engine.origin
    assert predictor.logits(np.zeros((1, 1, 28, 28), np.float32)).shape == (1, 10)
