"""Model files that lie or misbehave, run for real through ``edgecnn predict`` and ``edgecnn bench``: a declared input
past the image limits, a second graph input, a graph that fails when run, one that never finishes (Ctrl-C) — each
one line and an exit status, never a traceback, an exabyte allocation or a hang."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, blocking_prelude, run_cli

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

FOREIGN = ("--classes", "a,b,c", "--mean", "0.5", "--std", "0.5")
BENCH = ("--iters", "3", "--warmup", "1", "--cold-runs", "0", "--batch-sizes", "1")


def _save(nodes, inputs, path, *, init=(), output=("y", ["N", 3])):
    weights = [numpy_helper.from_array(np.ones((1, 3), np.float32), "w"), *init]
    graph = helper.make_graph(
        nodes, "g", inputs, [helper.make_tensor_value_info(output[0], TensorProto.FLOAT, output[1])], weights
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _image_input(height=28, width=28):
    return helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, height, width])


_MEAN = helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=0)


def classifier(path, height=28, width=28):
    return _save([_MEAN, helper.make_node("MatMul", ["m", "w"], ["y"])], [_image_input(height, width)], path)


def two_inputs(path):
    bias = helper.make_tensor_value_info("bias", TensorProto.FLOAT, ["N", 3])
    nodes = [_MEAN, helper.make_node("MatMul", ["m", "w"], ["y0"]), helper.make_node("Add", ["y0", "bias"], ["y"])]
    return _save(nodes, [_image_input(), bias], path)


def fails_when_run(path):
    """Loads (the shape is computed at run time), then Reshape refuses: onnxruntime fails inside the call."""
    ones = numpy_helper.from_array(np.array([1, 1], np.int64), "ones")
    nodes = [
        _MEAN,
        helper.make_node("Shape", ["m"], ["shape"]),
        helper.make_node("Add", ["shape", "ones"], ["bigger"]),
        helper.make_node("Reshape", ["m", "bigger"], ["r"]),
        helper.make_node("MatMul", ["r", "w"], ["y"]),
    ]
    return _save(nodes, [_image_input()], path, init=[ones])


def never_finishes(path):
    """A Loop of 10^15 additions: only onnxruntime's terminate flag ends it."""
    state = helper.make_tensor_value_info
    body = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["c_out"]), helper.make_node("Add", ["v", "one"], ["v_out"])],
        "body",
        [state("i", TensorProto.INT64, []), state("c", TensorProto.BOOL, []), state("v", TensorProto.FLOAT, ["N", 3])],
        [state("c_out", TensorProto.BOOL, []), state("v_out", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(np.ones((1, 3), np.float32), "one")],
    )
    trip = numpy_helper.from_array(np.array(10**15, np.int64), "trip")
    go = numpy_helper.from_array(np.array(True), "go")
    nodes = [
        _MEAN,
        helper.make_node("MatMul", ["m", "w"], ["y0"]),
        helper.make_node("Loop", ["trip", "go", "y0"], ["y"], body=body),
    ]
    return _save(nodes, [_image_input()], path, init=[trip, go])


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    from PIL import Image

    path = tmp_path_factory.mktemp("photo") / "d.png"
    Image.fromarray((np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8)).save(path)
    return path


def _one_line(proc, *needles: str) -> str:
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("edgecnn: error: ") and all(n in line for n in needles), line
    return line


@pytest.mark.parametrize("side", [(16_385, 28), (100_000, 100_000), (10**9, 10**9), (2**40, 1)])
def test_an_input_past_the_image_limits_is_refused_before_any_allocation(tmp_path, photo, side):
    model = classifier(tmp_path / "huge.onnx", *side)
    _one_line(run_cli("predict", str(model), str(photo), *FOREIGN, block_torch=True), "past the limits")
    bench = run_cli("bench", str(model), *BENCH, block_torch=True)
    if side[0] * side[1] * 4 <= 1 << 30:  # bench feeds any tensor, held to the byte limit: a long strip fits
        assert bench.returncode == 0, bench.stderr
    else:
        _one_line(bench, "over the 1,024 MiB")


def test_bench_refuses_a_batch_whose_random_input_is_past_the_limit(tmp_path):
    model = classifier(tmp_path / "big.onnx", 4000, 4000)  # 64 MB an image: batch 1 fits, batch 64 does not
    assert run_cli("bench", str(model), *BENCH, block_torch=True).returncode == 0
    _one_line(run_cli("bench", str(model), *BENCH[:-1], "1,64", block_torch=True), "a batch of 64", "--batch-sizes")


def test_a_second_graph_input_is_refused_naming_every_input(tmp_path, photo):
    model = two_inputs(tmp_path / "two.onnx")
    _one_line(run_cli("predict", str(model), str(photo), *FOREIGN, block_torch=True), "2 inputs", "x", "bias")
    _one_line(run_cli("bench", str(model), *BENCH, block_torch=True), "2 inputs", "x tensor(float)", "bias")


def test_a_graph_that_fails_when_run_is_one_line_in_predict_and_bench(tmp_path, photo):
    model = fails_when_run(tmp_path / "fails.onnx")
    _one_line(run_cli("predict", str(model), str(photo), *FOREIGN, block_torch=True), "failed to run", "Reshape")
    _one_line(run_cli("bench", str(model), *BENCH, block_torch=True), "on its first call", "Reshape")


@pytest.mark.parametrize("command", ["predict", "bench"])
def test_ctrl_c_stops_a_model_that_never_finishes(tmp_path, photo, command):
    model = never_finishes(tmp_path / "forever.onnx")
    args = [str(model), str(photo), *FOREIGN] if command == "predict" else [str(model), *BENCH]
    code = blocking_prelude() + "from edgecnn.cli import main; sys.argv[0] = 'edgecnn'; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, command, *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a suite started in the background (CI, `cmd &`) runs with SIGINT ignored, which children inherit: a
        # terminal's Ctrl-C reaches a foreground command with the default disposition, so the test restores it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        _wait_until_running(proc)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)  # a bound on a hang, not a timing assertion
    finally:
        proc.kill()
    assert proc.returncode == 130 and stderr.strip().splitlines() == ["edgecnn: interrupted"], stderr


def _wait_until_running(proc) -> None:
    """Until the process has loaded onnxruntime's session and is inside the model's run (its CPU time grows)."""
    ticks = os.sysconf("SC_CLK_TCK")

    def user_seconds() -> float:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) / ticks  # utime, the 14th field of proc(5)

    while proc.poll() is None and user_seconds() < 3:  # import, load, then the endless Loop
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
