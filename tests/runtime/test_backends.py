"""The Predictor on its two backends, onnxruntime and OpenVINO, on the same zoo files and real test images."""

import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import REPO, blocking_prelude

from edgecnn.errors import ConfigError, ProviderError
from edgecnn.runtime import Predictor

pytest.importorskip("openvino", reason="the [openvino] extra is not installed (tools/setup.sh installs it)")


@pytest.fixture(scope="module")
def images(fashion):
    return fashion.normalize(fashion.test_images[:500]).numpy()


@pytest.mark.parametrize("name", ["keras_same", "fashion_bn"])
def test_fp32_gives_the_same_logits_on_both_backends(name, images):
    ort, ov = Predictor.from_zoo(name, "fp32"), Predictor.from_zoo(name, "fp32", backend="openvino")
    assert (ort.backend, ort.device, ort.precision) == ("onnxruntime", "cpu", "f32")
    assert (ov.backend, ov.device, ov.precision) == ("openvino", "CPU", "f32")
    a, b = ort.logits(images), ov.logits(images)
    assert np.abs(a - b).max() <= 1e-4 and np.array_equal(a.argmax(1), b.argmax(1))


def test_the_int8_file_runs_as_int8_on_both_and_agrees_within_the_int8_gate(images):
    ort, ov = Predictor.from_zoo("keras_same", "int8"), Predictor.from_zoo("keras_same", "int8", backend="openvino")
    assert ort.precision == ov.precision == "int8"
    assert np.mean(ort.logits(images).argmax(1) == ov.logits(images).argmax(1)) >= 0.99


def test_reported_precision_and_threads_are_what_the_compiled_model_says(images):
    from edgecnn.runtime.backends import runtime_precision

    f32 = Predictor.from_zoo("keras_same", "fp32", backend="openvino", threads=1)
    bf16 = Predictor.from_zoo("keras_same", "fp32", backend="openvino", precision="bf16", threads=1)
    assert str(f32.session.get_property("INFERENCE_PRECISION_HINT")) in ("<Type: 'float32'>", "f32")
    assert f32.session.get_property("INFERENCE_NUM_THREADS") == 1
    assert runtime_precision(f32.session) == f32.precision == "f32"
    assert runtime_precision(bf16.session) == bf16.precision  # bf16 where the CPU has it, else what it fell to
    if "BF16" in __import__("openvino").Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        assert bf16.precision == "bf16"
        a, b = f32.logits(images), bf16.logits(images)
        assert 0 < np.abs(a - b).max() < 1 and np.mean(a.argmax(1) == b.argmax(1)) >= 0.99  # close, not equal


def test_openvino_predictor_is_thread_safe(images):
    predictor = Predictor.from_zoo("keras_same", "int8", backend="openvino")
    expected = predictor.logits(images[:64])
    results, errors = [], []

    def work():
        try:
            results.extend(np.array_equal(predictor.logits(images[:64]), expected) for _ in range(20))
        except Exception as exc:  # noqa: BLE001 (collected and asserted below)
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 80 and all(results)


def test_wrong_combinations_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="backend must be one of"):
        Predictor.from_zoo("keras_same", backend="tensorrt")
    with pytest.raises(ConfigError, match="OpenVINO's"):
        Predictor.from_zoo("keras_same", precision="bf16")  # onnxruntime runs the file's own precision
    with pytest.raises(ConfigError, match="provider= is onnxruntime's"):
        Predictor.from_zoo("keras_same", backend="openvino", provider="cuda")
    with pytest.raises(ConfigError, match="precision must be one of"):
        Predictor.from_zoo("keras_same", backend="openvino", precision="int4")
    with pytest.raises(ProviderError, match="not available here"):
        Predictor.from_zoo("keras_same", backend="openvino", device="NPU.7")


def _run(code: str, blocked: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", blocking_prelude(blocked) + code], capture_output=True, text=True, cwd=REPO, timeout=300
    )


def test_without_openvino_the_runtime_works_as_before_and_openvino_asks_for_its_extra():
    blocked = ("torch", "torchvision", "onnx", "matplotlib", "openvino")
    code = (
        "import numpy as np\nfrom edgecnn.runtime import Predictor\nfrom edgecnn.errors import ProviderError\n"
        "p = Predictor.from_zoo('keras_same')\nassert p.backend == 'onnxruntime'\n"
        "print(p.predict(np.zeros((28, 28), np.uint8))[0].label)\n"
        "try:\n    Predictor.from_zoo('keras_same', backend='openvino')\n"
        "except ProviderError as e:\n    print('REFUSED', e)\n"
    )
    proc = _run(code, blocked)
    assert proc.returncode == 0, proc.stderr
    refused = [line for line in proc.stdout.splitlines() if line.startswith("REFUSED")]
    assert len(refused) == 1 and 'pip install "edgecnn[openvino]"' in refused[0]


def test_cli_predict_on_openvino_answers_as_onnxruntime_does(tmp_path, fashion):
    import json

    from conftest import run_cli
    from PIL import Image

    for i in range(4):
        Image.fromarray(fashion.test_images[i, 0].numpy()).save(tmp_path / f"{i}.png")
    files = [str(tmp_path / f"{i}.png") for i in range(4)]
    answers = {
        backend: json.loads(
            run_cli("predict", "zoo:keras_same", *files, "--backend", backend, "--json", block_torch=True).stdout
        )
        for backend in ("onnxruntime", "openvino")
    }
    assert [r["label"] for r in answers["onnxruntime"]] == [r["label"] for r in answers["openvino"]]
    refused = run_cli("predict", "zoo:keras_same", files[0], "--precision", "bf16", block_torch=True)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and "OpenVINO's" in refused.stderr


def test_bench_measures_each_model_on_each_backend_in_one_run(tmp_path):
    from edgecnn.bench.run import run_bench
    from edgecnn.config import BenchConfig
    from edgecnn.runtime.zoo import resolve_zoo

    files = [resolve_zoo("zoo:keras_same:int8"), resolve_zoo("zoo:fashion_bn:fp32")]
    config = BenchConfig(backends=("onnxruntime", "openvino"), batch_sizes=(1, 4), iters=10, warmup=2, cold_runs=1)
    result = run_bench(files, config)
    kinds = [(m.kind, m.provider, m.precision, m.quantization) for m in result.models]
    assert kinds == [
        ("onnxruntime", "cpu", "int8", "static"),
        ("openvino", "CPU", "int8", "static"),
        ("onnxruntime", "cpu", "f32", "none"),
        ("openvino", "CPU", "f32", "none"),
    ]
    assert all(len(rows) == 4 and all(r.samples == 10 for r in rows.values()) for rows in result.batches.values())
    assert all(m.cold_start_ms and m.cold_start_ms > 0 for m in result.models)
    with pytest.raises(ConfigError, match="backends must be"):
        BenchConfig(backends=("tensorrt",))


def test_bench_sweeps_threads_and_backends_in_one_interleaved_run(tmp_path):
    import json

    from conftest import run_cli

    proc = run_cli(
        "bench", "zoo:keras_same:int8", "--backends", "onnxruntime,openvino", "--threads", "1,2",
        "--batch-sizes", "1,8", "--iters", "10", "--warmup", "2", "--cold-runs", "0", "--json", "-",
        block_torch=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    models = json.loads(proc.stdout)["models"]
    assert [(m["kind"], m["threads"], m["precision"]) for m in models] == [
        ("onnxruntime", 1, "int8"),
        ("onnxruntime", 2, "int8"),
        ("openvino", 1, "int8"),
        ("openvino", 2, "int8"),
    ]
    assert all(m["name"].endswith(f"[{m['kind']}, {m['threads']} thr]") for m in models)
    refused = run_cli("bench", "zoo:keras_same", "--threads", "1,2", "--torch", "x.pt", block_torch=False)
    assert refused.returncode == 1 and "one --threads value" in refused.stderr


def _recorded(tmp_path, runtime: dict) -> str:
    """The zoo's keras_same int8 file with ``runtime`` as auto's recorded choice in its metadata."""
    import dataclasses

    import onnx

    from edgecnn.export.graphs import write_metadata
    from edgecnn.runtime.zoo import resolve_zoo

    src = resolve_zoo("zoo:keras_same:int8")
    meta = Predictor(src).metadata
    quantization = {**meta.quantization, "auto": {"chosen": "static@x", "runtime": runtime}}
    out = tmp_path / "recorded.onnx"
    write_metadata(onnx.load(str(src)), dataclasses.replace(meta, quantization=quantization), out)
    return str(out)


OPENVINO_INT8 = {"backend": "openvino", "precision": "int8", "hint": "f32"}


def test_backend_auto_runs_what_auto_recorded_and_a_named_backend_overrides_it(tmp_path, images):
    path = _recorded(tmp_path, OPENVINO_INT8)
    chosen, named = Predictor(path), Predictor(path, backend="onnxruntime")
    assert (chosen.backend, chosen.precision) == ("openvino", "int8")
    assert (named.backend, named.precision) == ("onnxruntime", "int8")
    assert np.mean(chosen.logits(images).argmax(1) == named.logits(images).argmax(1)) >= 0.99
    assert Predictor.from_zoo("keras_same", "fp32").backend == "onnxruntime"  # no record: onnxruntime, as before


def test_a_recorded_backend_that_is_missing_falls_back_to_onnxruntime_in_one_line(tmp_path, fashion):
    from conftest import run_cli
    from PIL import Image

    path = _recorded(tmp_path, OPENVINO_INT8)
    code = (
        "import warnings\nfrom edgecnn.runtime import Predictor, BackendWarning\n"
        f"with warnings.catch_warnings(record=True) as seen:\n    warnings.simplefilter('always')\n"
        f"    p = Predictor({path!r})\n"
        "print(p.backend, p.precision, [(w.category.__name__, str(w.message)) for w in seen])\n"
    )
    proc = _run(code, ("torch", "torchvision", "onnx", "matplotlib", "openvino"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("onnxruntime int8 [('BackendWarning', ")
    assert "openvino int8" in proc.stdout and 'pip install "edgecnn[openvino]"' in proc.stdout
    Image.fromarray(fashion.test_images[0, 0].numpy()).save(tmp_path / "0.png")
    cli = run_cli("predict", path, str(tmp_path / "0.png"), blocked=("torch", "openvino"))
    assert cli.returncode == 0 and cli.stderr.count("\n") == 1, cli.stderr
    assert cli.stderr.startswith("edgecnn: warning: recorded.onnx: auto chose openvino int8")
    assert cli.stderr.rstrip().endswith("running it on onnxruntime")


def test_a_recorded_backend_this_edgecnn_does_not_know_is_named_and_not_run(tmp_path):
    path = _recorded(tmp_path, {"backend": "tensorrt", "precision": "int8", "hint": "fp8"})
    with pytest.warns(UserWarning, match="does not know .*'tensorrt'.*running it on onnxruntime"):
        predictor = Predictor(path)
    assert predictor.backend == "onnxruntime"
