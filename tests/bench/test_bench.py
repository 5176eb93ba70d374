"""`edgecnn bench` and its statistics: synthetic timings with known answers, then real models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_cli

from edgecnn.bench.run import run_bench
from edgecnn.config import BenchConfig, ExportConfig
from edgecnn.errors import ConfigError
from edgecnn.export.from_checkpoint import export_checkpoint
from edgecnn.runtime.timing import measure_interleaved, summarize

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeModel:
    """A 'model' (an engine's ``run(x)``) whose every call takes the next duration from a list, on the
    fake clock."""

    def __init__(self, name, clock, durations, calls):
        self.name, self.clock, self.durations, self.calls, self.i = name, clock, durations, calls, 0

    def __call__(self, _x):
        self.calls.append(self.name)
        self.clock.now += self.durations[self.i % len(self.durations)]
        self.i += 1


def test_percentiles_of_known_samples():
    stats = summarize([i / 1000 for i in range(1, 101)])  # 1 … 100 ms
    assert stats["p50"] == pytest.approx(50) and stats["p90"] == pytest.approx(90)
    assert stats["p99"] == pytest.approx(99) and stats["min"] == pytest.approx(1)
    assert stats["max"] == pytest.approx(100) and stats["mean"] == pytest.approx(50.5)
    assert stats["std"] == pytest.approx(29.0115, abs=1e-3)
    assert summarize([0.002])["std"] == 0.0


def test_two_models_are_measured_interleaved_with_exact_timings():
    clock, calls = FakeClock(), []
    a = FakeModel("a", clock, [0.001], calls)
    b = FakeModel("b", clock, [0.001 * k for k in range(1, 11)], calls)  # 1, 2, …, 10 ms, repeating
    x = np.zeros((1, 4), np.float32)
    samples = measure_interleaved({"a": a, "b": b}, {"a": x, "b": x}, iters=40, warmup=2, block=10, clock=clock)
    assert len(samples["a"]) == len(samples["b"]) == 40
    assert summarize(samples["a"])["p50"] == pytest.approx(1.0)
    # b's untimed first run of each block takes one duration, so its timed runs cycle through the rest
    assert sorted(set(round(t * 1e3) for t in samples["b"])) == list(range(1, 11))
    timed = calls[4:]  # after 2 warm-up rounds of a, b
    assert timed[:22] == ["a"] * 11 + ["b"] * 11  # blocks of 1 untimed + 10 timed, taking turns
    assert timed.count("a") == timed.count("b") == 44


def test_duration_mode_stops_on_time():
    clock, calls = FakeClock(), []
    runs = {"a": FakeModel("a", clock, [0.01], calls), "b": FakeModel("b", clock, [0.01], calls)}
    x = np.zeros((1, 4), np.float32)
    samples = measure_interleaved(runs, dict.fromkeys(runs, x), warmup=0, block=5, duration=1.0, clock=clock)
    assert len(samples["a"]) == len(samples["b"])
    assert clock.now >= 1.0 and clock.now <= 1.0 + 2 * 6 * 0.01 + 1e-9  # at most one round past the deadline


def test_each_model_is_called_with_its_own_input():
    seen = {"a": [], "b": []}
    runs = {name: seen[name].append for name in seen}
    inputs = {"a": np.zeros((1, 2), np.uint8), "b": np.ones((3, 2), np.float32)}
    measure_interleaved(runs, inputs, iters=3, warmup=1, block=2)
    assert all(x is inputs[name] for name in seen for x in seen[name]) and len(seen["a"]) == 1 + (1 + 2) + (1 + 1)


def test_a_foreign_model_is_timed_through_the_engine_of_each_backend(tmp_path):
    """A file without edgecnn metadata, as a Predictor given classes= would run it, on both backends."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 1, 4, 4])
    y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 1, 4, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["pixels"], ["scores"])], "g", [x], [y])
    path = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    config = BenchConfig(backends=("onnxruntime", "openvino"), batch_sizes=(1, 3), iters=5, warmup=1, cold_runs=1)
    result = run_bench([path], config)
    assert [(m.kind, m.quantization) for m in result.models] == [("onnxruntime", "foreign"), ("openvino", "foreign")]
    assert all(m.cold_start_ms and m.cold_start_ms > 0 for m in result.models)
    assert all(row.samples == 5 for rows in result.batches.values() for row in rows.values())


def _row(p50: float, ratio: float) -> dict[str, float]:
    return {"p50": p50, "p90": p50 * 1.2, "p99": p50 * 1.5, "min": p50 * 0.9, "ratio_p50": ratio}


def test_the_latency_plot_draws_ratios_as_distances_not_bars_on_a_log_axis(tmp_path, monkeypatch):
    """On a log axis a bar's length means nothing (a 0.75× model looked 5× faster): points with whiskers,
    labelled with the ratio to the first model."""
    from matplotlib.patches import Rectangle

    import edgecnn.plots as plots

    drawn = []
    monkeypatch.setattr(plots, "_save", lambda fig, path, plt: drawn.append(fig))
    result = {
        "environment": {"cpu": "x86", "cores": 2, "onnxruntime": "1.0"},
        "models": [{"name": "a/fp32.onnx"}, {"name": "b/int8.onnx"}],
        "batches": {"1": {"a/fp32.onnx": _row(0.4, 1.0), "b/int8.onnx": _row(0.3, 0.75)}},
    }
    plots.plot_latency(result, tmp_path / "chart.png")
    (ax,) = drawn[0].axes
    assert ax.get_yscale() == "log"
    assert not [p for p in ax.patches if isinstance(p, Rectangle) and p.get_height() > 0]  # no bars
    points = [tuple(line.get_ydata()) for line in ax.lines if line.get_marker() == "o"]
    assert points == [(0.4,), (0.3,)]
    assert [t.get_text() for t in ax.texts] == ["0.4 ms\n×1.00", "0.3 ms\n×0.75"]


def test_bench_config_refuses_nonsense():
    with pytest.raises(ConfigError, match="batch_sizes"):
        BenchConfig(batch_sizes=(0,))
    with pytest.raises(ConfigError, match="duration"):
        BenchConfig(duration=-1)


@pytest.fixture(scope="module")
def models(checkpoints, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    quick = dict(parity_samples=300, latency_iters=3)
    export_checkpoint(checkpoints("tiny"), out / "fp32.onnx", ExportConfig(**quick))
    export_checkpoint(checkpoints("tiny"), out / "int8.onnx", ExportConfig(quantize="static", **quick))
    return out


def test_json_to_stdout_holds_every_figure_with_torch_blocked(models, tmp_path):
    proc = run_cli(
        "bench",
        str(models / "fp32.onnx"),
        str(models / "int8.onnx"),
        "--batch-sizes",
        "1,4",
        "--iters",
        "30",
        "--warmup",
        "2",
        "--cold-runs",
        "1",
        "--json",
        "-",
        "--plot",
        str(tmp_path / "chart.png"),
        blocked=("torch", "torchvision", "onnx"),
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # nothing but the JSON on stdout
    env = result["environment"]
    for key in ("cpu", "cpu_flags", "cores", "onnxruntime", "edgecnn", "numpy", "providers"):
        assert key in env
    assert [m["name"] for m in result["models"]] == [str(models / "fp32.onnx"), str(models / "int8.onnx")]
    for m in result["models"]:
        for key in (
            "session_create_ms",
            "first_inference_ms",
            "cold_start_ms",
            "peak_rss_mib",
            "file_bytes",
            "provider",
            "threads",
        ):
            assert m[key] is not None, key
        assert m["provider"] == "cpu" and m["peak_rss_mib"] > 10
    assert set(result["batches"]) == {"1", "4"}
    for rows in result["batches"].values():
        for row in rows.values():
            for key in ("p50", "p90", "p99", "mean", "std", "min", "max", "throughput", "ratio_p50"):
                assert row[key] >= 0, key
            assert row["min"] <= row["p50"] <= row["p90"] <= row["p99"] <= row["max"]
            assert row["samples"] == 30
        assert rows[str(models / "fp32.onnx")]["ratio_p50"] == 1.0
    assert (tmp_path / "chart.png").read_bytes()[:8] == PNG_MAGIC


def test_plot_without_matplotlib_fails_before_measuring(models, tmp_path):
    """A device install has no matplotlib: one line, at once (100,000 iterations would outlast the
    subprocess timeout), and no half-written files."""
    proc = run_cli(
        "bench",
        str(models / "fp32.onnx"),
        "--iters",
        "100000",
        "--cold-runs",
        "3",
        "--json",
        str(tmp_path / "r.json"),
        "--plot",
        str(tmp_path / "chart.png"),
        block_torch=True,
    )
    assert proc.returncode == 1 and proc.stdout == "" and "matplotlib" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


def test_table_and_torch_row(models, checkpoints, tmp_path):
    proc = run_cli(
        "bench",
        str(models / "fp32.onnx"),
        "--torch",
        str(checkpoints("tiny")),
        "--batch-sizes",
        "2",
        "--iters",
        "20",
        "--cold-runs",
        "0",
        "--json",
        str(tmp_path / "r.json"),
    )
    assert proc.returncode == 0, proc.stderr
    assert "torch eager" in proc.stdout and "batch 2" in proc.stdout and "environment:" in proc.stdout
    saved = json.loads((tmp_path / "r.json").read_text())
    assert [m["kind"] for m in saved["models"]] == ["onnxruntime", "torch"]


@pytest.mark.parametrize(
    "args, code",
    [
        (["missing.onnx"], 1),
        (["CORRUPT"], 1),
        (["GOOD", "--batch-sizes", "1,x"], 1),
        (["GOOD", "--batch-sizes", "0"], 1),
        (["GOOD", "--provider", "cuda"], 1),
        (["GOOD", "--iters", "many"], 2),
    ],
)
def test_failures_are_one_line_and_no_stdout(models, tmp_path, args, code):
    import onnxruntime as ort

    if "cuda" in args and "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime offers CUDA")
    (tmp_path / "corrupt.onnx").write_bytes(b"\x08\x01garbage")
    args = [
        {
            "GOOD": str(models / "fp32.onnx"),
            "CORRUPT": str(tmp_path / "corrupt.onnx"),
            "missing.onnx": str(tmp_path / "missing.onnx"),
        }.get(a, a)
        for a in args
    ]
    proc = run_cli("bench", "--iters", "5", "--cold-runs", "0", *args, block_torch=True)
    assert proc.returncode == code and proc.stdout == ""
    assert "Traceback" not in proc.stderr
    if code == 1:
        assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("edgecnn: error: ")
