"""auto's decision rule, measured on a fake clock: each fake engine advances the clock by its own cost per
batch size, so the timings (and the choice) are exactly what the test says they are."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.runtime.backends import Engine
from edgecnn.runtime.fastest import TIE_TOLERANCE, Contender, choose_fastest
from edgecnn.runtime.gates import gates_for_precision

HINT = 32
LABELS = np.arange(1000) % 10
REFERENCE = np.eye(10, dtype=np.float32)[LABELS] * 5


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _logits(kind: str) -> np.ndarray:
    if kind == "exact":
        return REFERENCE.copy()
    if kind == "close":  # the same top-1 everywhere, logits moved by 0.05: passes int8/bf16 gates, not fp32's
        return REFERENCE + 0.05
    wrong = REFERENCE.copy()  # "wrong": 5 % of the answers changed
    wrong[:50] = np.roll(wrong[:50], 1, axis=1)
    return wrong


def _contender(tmp_path, clock, name, *, cost, kind="exact", precision="f32"):
    mode, _, rest = name.partition("@")
    backend = "openvino" if rest else "onnxruntime"
    path = tmp_path / f"{mode}.onnx"
    path.write_bytes(b"onnx")
    table = _logits(kind)

    def run(x: np.ndarray) -> np.ndarray:
        clock.now += cost.get(len(x), 0.0)
        return table[x[:, 0].astype(int)]

    engine = Engine(backend, "cpu", precision, None, run, ())
    return Contender(name, mode, path, engine, gates_for_precision(precision, 0.3))


def _decide(tmp_path, specs):
    clock = FakeClock()
    contenders = [_contender(tmp_path, clock, name, **spec) for name, spec in specs.items()]
    feed = np.arange(1000, dtype=np.float32)[:, None].repeat(4, axis=1)  # the row index: logits look it up
    return choose_fastest(contenders, feed, LABELS, batch_size_hint=HINT, max_accuracy_drop=0.3, iters=20, clock=clock)


def ms(b1: float, hint: float) -> dict[int, float]:
    return {1: b1 / 1e3, HINT: hint / 1e3}


def int8(b1: float, hint: float, kind: str = "close") -> dict:
    return {"cost": ms(b1, hint), "kind": kind, "precision": "int8"}


def test_the_fastest_at_the_hint_batch_that_passes_and_is_never_slower_wins(tmp_path):
    decision = _decide(
        tmp_path,
        {
            "none": {"cost": ms(1.0, 10.0)},
            "static": int8(0.5, 4.0),
            "static@openvino": int8(0.8, 3.0),
            "none@openvino:bf16": {"cost": ms(0.9, 2.0), "kind": "wrong", "precision": "bf16"},  # fastest, wrong
            "dynamic": int8(1.1, 1.0),  # slower at batch 1
        },
    )
    rows = {row.candidate: row for row in decision.table}
    assert decision.chosen == "static@openvino"
    assert decision.runtime == {"backend": "openvino", "precision": "int8", "hint": None}
    assert rows["static@openvino"].latency_ms == {"1": 0.8, "32": 3.0}  # the fake clock's costs, exactly
    assert rows["none@openvino:bf16"].why_not == "fails its gates" and not rows["none@openvino:bf16"].passes_gates
    assert rows["dynamic"].passes_gates and rows["dynamic"].why_not == "slower than onnxruntime fp32 at batch 1"
    assert rows["static"].eligible and rows["none"].eligible


def test_a_file_that_fails_on_onnxruntime_is_not_chosen_for_another_backend(tmp_path):
    decision = _decide(
        tmp_path,
        {
            "none": {"cost": ms(1.0, 10.0)},
            "static": int8(0.5, 4.0, kind="wrong"),
            "static@openvino": int8(0.5, 2.0),
        },
    )
    rows = {row.candidate: row for row in decision.table}
    assert rows["static@openvino"].passes_gates and not rows["static@openvino"].eligible
    assert "fallback" in rows["static@openvino"].why_not
    assert decision.chosen == "none"


def test_a_tie_at_the_hint_batch_goes_to_the_faster_at_batch_1(tmp_path):
    within = 4.0 * (1 + TIE_TOLERANCE * 0.9)
    decision = _decide(
        tmp_path,
        {
            "none": {"cost": ms(1.0, 10.0)},
            "static": int8(0.4, within),
            "static@openvino": int8(0.9, 4.0),
        },
    )
    assert decision.chosen == "static"
    beyond = _decide(
        tmp_path,
        {
            "none": {"cost": ms(1.0, 10.0)},
            "static": {"cost": ms(0.4, 4.0 * (1 + TIE_TOLERANCE * 1.5)), "kind": "close", "precision": "int8"},
            "static@openvino": int8(0.9, 4.0),
        },
    )
    assert beyond.chosen == "static@openvino"


@pytest.mark.parametrize("kind", ["close", "wrong"])
def test_fp32_on_another_backend_is_held_to_the_exact_gates(tmp_path, kind):
    decision = _decide(
        tmp_path,
        {"none": {"cost": ms(1.0, 10.0)}, "none@openvino": {"cost": ms(0.5, 5.0), "kind": kind}},
    )
    assert decision.chosen == "none"  # 0.05 off is not fp32, however fast
    assert decision.table[1].why_not == "fails its gates"


def test_nothing_faster_keeps_fp32_on_onnxruntime(tmp_path):
    decision = _decide(
        tmp_path,
        {
            "none": {"cost": ms(1.0, 10.0)},
            "static": int8(1.2, 12.0),
            "none@openvino": {"cost": ms(1.5, 9.0)},
        },
    )
    assert decision.chosen == "none" and decision.runtime["backend"] == "onnxruntime"
    assert decision.table[2].why_not == "slower than onnxruntime fp32 at batch 1"
    assert decision.to_dict()["batch_size_hint"] == HINT


def test_each_precision_is_gated_by_its_own_tier():
    exact, bf16, int8 = (gates_for_precision(p, 0.3) for p in ("f32", "bf16", "int8"))
    assert exact.max_abs == 1e-4 and exact.min_agreement == 1.0  # f32 on any backend: rounding noise only
    assert bf16.max_abs is None and bf16.min_agreement == 0.99 and bf16.max_accuracy_drop_pp == 0.3
    assert bf16 == int8 == gates_for_precision("f16", 0.3)  # reduced floats: the quantized tier, like fp16's
    # bf16-sized noise (0.05 on every logit, the same answers) passes bf16's tier and fails f32's
    assert not bf16.failures(max_abs=0.05, agreement=1.0, reference_accuracy=0.9, accuracy=0.9)
    assert exact.failures(max_abs=0.05, agreement=1.0, reference_accuracy=0.9, accuracy=0.9)


def test_a_file_openvino_cannot_compile_leaves_onnxruntime_candidates_standing(monkeypatch):
    from edgecnn.errors import ModelFileError
    from edgecnn.runtime import candidates as contenders
    from edgecnn.runtime.zoo import resolve_zoo

    def refuse(path, **_options):
        raise ModelFileError(f"OpenVINO cannot load {path} on CPU (an op it lacks)", path=path)

    monkeypatch.setattr(contenders, "openvino_engine", refuse)
    files = {"none": resolve_zoo("zoo:keras_same:fp32"), "static": resolve_zoo("zoo:keras_same:int8")}
    found = contenders.open_contenders(files, backends=("onnxruntime", "openvino"), max_accuracy_drop=0.3)
    assert [(c.name, c.engine.backend, c.engine.precision) for c in found] == [
        ("none", "onnxruntime", "f32"),
        ("static", "onnxruntime", "int8"),
    ]
