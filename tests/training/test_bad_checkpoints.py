"""Checkpoints that lie — wrong types, missing keys, weights that do not fit, a flipped bit, NaN weights —
built here from a real one. Loading, export, verify and --resume each refuse them with one clear error."""

from __future__ import annotations

import copy
import io
import math
import zipfile

import pytest
import torch
from conftest import run_cli

from edgecnn.config import TrainConfig
from edgecnn.errors import EdgeCNNError, ModelFileError
from edgecnn.training.checkpoint import load_checkpoint
from edgecnn.training.loop import fit


@pytest.fixture(scope="module")
def state(checkpoints):
    return torch.load(checkpoints("tiny"), weights_only=True)


def _set(path: str, value):
    def edit(state):
        keys = path.split(".")
        target = state
        for key in keys[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value(target[keys[-1]]) if callable(value) else value
        return state

    return edit


_DELETE = object()


def _first_weight(fn, states=("model_state",)):
    def edit(state):
        key = next(k for k in state["model_state"] if k.endswith("weight"))
        for name in states:
            state[name] = {**state[name], key: fn(state[name][key])}
        return state

    return edit


LIES = {
    "not a dict": lambda s: [s],
    "no card": _set("card", _DELETE),
    "card a list": _set("card", []),
    "no weights": _set("model_state", _DELETE),
    "weights as text": _set("model_state", {"features.0.weight": "heavy"}),
    "missing tensor": lambda s: {**s, "model_state": dict(list(s["model_state"].items())[1:])},
    "extra tensor": lambda s: {**s, "model_state": {**s["model_state"], "ghost": torch.zeros(3)}},
    "wrong shape": _first_weight(lambda w: torch.zeros(w.shape[0] + 1, *w.shape[1:])),
    "NaN weight": _first_weight(lambda w: torch.full_like(w, math.nan)),
    "best epoch after the last": _set("best_epoch", 7),
    "no last weights": _set("last_state", _DELETE),
    "epoch as text": _set("epoch", "one"),
    "negative step": _set("step", -5),
    "history too short": _set("history", []),
    "config lr negative": _set("config.lr", -1.0),
    "config unknown key": _set("config.flavour", "vanilla"),
    "config a list": _set("config", [1, 2]),
    "arch unknown": lambda s: _set("config.arch", "resnet9000")(_set("card.arch", "resnet9000")(s)),
    "card and config disagree": _set("card.arch", "keras_same"),
    "classes not text": _set("card.class_names", [1, 2, 3]),
    "shape of two": _set("card.input_shape", [28, 28]),
    "std zero": _set("card.normalization.std", [0.0]),
    "optimizer state text": _set("optimizer_state", "adam"),
    "optimizer moment inf": lambda s: {
        **s,
        "optimizer_state": {**s["optimizer_state"], "state": {0: {"exp_avg": torch.tensor([math.inf])}}},
    },
}
# the last epoch's weights only matter to a resumed run (build_model takes the chosen ones)
RESUME_LIES = {
    **LIES,
    "last weights wrong shape": _first_weight(lambda w: torch.zeros(w.shape[0] + 1, *w.shape[1:]), ("last_state",)),
    "last weights NaN": _first_weight(lambda w: torch.full_like(w, math.nan), ("last_state",)),
}


def _save(state, path):
    torch.save(state, path)
    return path


@pytest.mark.parametrize("lie", sorted(LIES))
def test_a_lying_checkpoint_is_refused_before_it_becomes_a_model(lie, state, tmp_path):
    path = _save(LIES[lie](copy.deepcopy(state)), tmp_path / "checkpoint.pt")
    with pytest.raises(EdgeCNNError):
        load_checkpoint(path).build_model()


@pytest.mark.parametrize(
    "lie, named", [("NaN weight", "model_state holds"), ("optimizer moment inf", "optimizer_state holds")]
)
def test_nan_or_inf_is_refused_at_load_naming_the_tensor(lie, named, state, tmp_path):
    path = _save(LIES[lie](copy.deepcopy(state)), tmp_path / "checkpoint.pt")
    tensor = "state.0.exp_avg" if lie.startswith("optimizer") else r"[\w.]+weight"
    with pytest.raises(ModelFileError, match=f"{named} NaN or infinite values in {tensor}"):
        load_checkpoint(path)


def test_a_flipped_bit_in_the_weights_fails_the_checksum(state, tmp_path):
    path = _save(copy.deepcopy(state), tmp_path / "checkpoint.pt")
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)  # the largest tensor's bytes
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[start + info.file_size // 2] ^= 0x40
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="checksum"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "lie", ["wrong shape", "optimizer state text", "NaN weight", "last weights wrong shape", "last weights NaN"]
)
def test_resume_refuses_a_lying_checkpoint(lie, state, tmp_path, mnist):
    run = tmp_path / "run"
    run.mkdir()
    _save(RESUME_LIES[lie](copy.deepcopy(state)), run / "checkpoint.pt")
    config = TrainConfig(**{**state["config"], "epochs": 2})
    with pytest.raises(ModelFileError):
        fit(config, run, resume=True, data=mnist)


@pytest.mark.parametrize("lie", ["wrong shape", "config lr negative", "not a dict"])
def test_cli_export_verify_resume_say_one_line_and_write_nothing(lie, state, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    _save(LIES[lie](copy.deepcopy(state)), run / "checkpoint.pt")
    for args in (
        ["export", str(run), "--out", str(tmp_path / "m.onnx")],
        ["train", "--out", str(run), "--resume", "--epochs", "3"],
    ):
        proc = run_cli(*args)
        assert proc.returncode == 1 and proc.stdout == "", proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("edgecnn: error: "), proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
