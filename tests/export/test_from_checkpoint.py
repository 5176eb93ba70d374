"""Real exports of real (briefly trained) nets, checked against torch on real MNIST test images."""

from __future__ import annotations

import contextlib
import dataclasses
import json

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from edgecnn.config import ExportConfig
from edgecnn.errors import ExportError, ModelFileError, ParityError
from edgecnn.export.from_checkpoint import export_checkpoint, verify_export
from edgecnn.export.sample import calibration_indices
from edgecnn.export.to_onnx import BakedPreprocessing, export_onnx
from edgecnn.files import report_path
from edgecnn.runtime import Predictor
from edgecnn.runtime.metadata import InputSpec, read_metadata
from edgecnn.runtime.preprocess import normalize, to_graph_input
from edgecnn.runtime.session import open_session
from edgecnn.training.architectures import create, list_archs

MODES = ("none", "dynamic", "static", "fp16")
QUICK = dict(parity_samples=1000, latency_iters=3)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("arch", list_archs())
def test_every_net_exports_in_every_mode_and_passes_parity(arch, mode, checkpoints, tmp_path, mnist):
    out = tmp_path / "model.onnx"
    report = export_checkpoint(checkpoints(arch), out, ExportConfig(quantize=mode, **QUICK))
    parity = report.parity
    assert parity.passed and set(parity.batch_sizes) == {"1", "2", "7", "64"}
    if mode == "none":
        assert parity.max_abs <= 1e-4 and parity.top1_agreement == 1.0
    else:
        assert parity.top1_agreement >= 0.99 and -parity.delta_accuracy_pp <= 0.3
    graph = onnx.load(str(out))
    ops = {node.op_type for node in graph.graph.node}
    assert "ConvInteger" not in ops  # never by default, in any mode
    if mode == "static":
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
        floats = [d for d in report.settings["shallow_convs"] if d["kept"].startswith("float")]
        assert report.quantized_ops["Conv"]["quantized"] == report.quantized_ops["Conv"]["of"] - len(floats)
    # it loads and runs on the CPU at every batch size, and its metadata round-trips
    session = open_session(out)
    x = normalize(mnist.test_images[:7].numpy(), [0.1307], [0.3081])
    for batch in (1, 2, 7):
        assert session.run(None, {"input": x[:batch]})[0].shape == (batch, 10)
    meta = read_metadata(session)
    assert meta.card.arch == arch and meta.card.class_names == mnist.class_names
    assert meta.quantization["mode"] == mode and meta.parity["passed"]
    assert meta.input == InputSpec(shape=(1, 28, 28)) and meta.card.normalization.mean == (0.1307,)
    assert json.loads(report_path(out).read_text()) == json.loads(json.dumps(report.to_dict()))


def test_default_dynamic_keeps_convs_float_and_small_heads_float(checkpoints, tmp_path):
    report = export_checkpoint(
        checkpoints("mnist_cnn3"), tmp_path / "m.onnx", ExportConfig(quantize="dynamic", **QUICK)
    )
    assert report.quantized_ops["Conv"] == {"quantized": 0, "of": 3}
    # the 2048×625 layer is quantized; the 625×10 head (6,250 weights) stays float
    assert report.quantized_ops["MatMul/Gemm"] == {"quantized": 1, "of": 2}
    assert report.size_ratio < 0.35


def test_dynamic_with_nothing_worth_quantizing_says_so_and_auto_skips_it(checkpoints, tmp_path):
    report = export_checkpoint(
        checkpoints("fashion_bn"), tmp_path / "d.onnx", ExportConfig(quantize="dynamic", **QUICK)
    )
    assert [w for w in report.warnings if "stays fp32" in w]  # returned in the report card, for the CLI to print
    assert report.quantized_ops["MatMul/Gemm"] == {"quantized": 0, "of": 1}
    auto = export_checkpoint(checkpoints("fashion_bn"), tmp_path / "a.onnx", ExportConfig(quantize="auto", **QUICK))
    table = auto.settings["auto"]["table"]
    assert [row["candidate"] for row in table if row["backend"] == "onnxruntime"] == ["none", "static"]
    assert not auto.warnings


def test_dynamic_conv_is_opt_in_with_a_warning(checkpoints, tmp_path):
    report = export_checkpoint(
        checkpoints("tiny"),
        tmp_path / "m.onnx",
        ExportConfig(quantize="dynamic", quantize_ops=("Conv", "MatMul", "Gemm"), min_weight_elements=0, **QUICK),
    )
    assert report.quantized_ops["Conv"]["quantized"] == 2
    assert any("ConvInteger" in w for w in report.warnings)


def test_auto_measures_candidates_and_records_its_decision(checkpoints, tmp_path):
    out = tmp_path / "auto.onnx"
    report = export_checkpoint(checkpoints("convnet5"), out, ExportConfig(quantize="auto", **QUICK))
    auto = report.settings["auto"]
    rows = {row["candidate"]: row for row in auto["table"]}
    assert list(rows)[:3] == ["none", "dynamic", "static"]
    assert {"none@openvino", "static@openvino"} <= set(rows)  # openvino is installed with the dev extras
    assert rows["none@openvino"]["precision"] == "f32" and rows["static@openvino"]["precision"] == "int8"
    chosen = rows[auto["chosen"]]
    assert chosen["eligible"] and report.mode == chosen["mode"] and report.auto.chosen == auto["chosen"]
    hint = str(auto["batch_size_hint"])
    eligible = [row for row in rows.values() if row["eligible"]]
    assert chosen["latency_ms"][hint] <= min(r["latency_ms"][hint] for r in eligible) * 1.03 + 1e-9
    for row in eligible:  # never slower than onnxruntime fp32, at either batch size
        assert all(row["latency_ms"][b] <= ms for b, ms in rows["none"]["latency_ms"].items())
    assert read_metadata(open_session(out)).quantization["auto"]["runtime"] == auto["runtime"]
    predictor = Predictor(out)  # backend "auto": the recorded choice
    assert (predictor.backend, predictor.precision) == (chosen["backend"], chosen["precision"])
    assert report.latency_ms_p50["exported"] == chosen["latency_ms"]
    from edgecnn.runtime.fingerprint import this_machine

    assert auto["machine"] == this_machine().to_dict()  # where the table was measured, recorded with the choice


def test_static_calibration_sample_is_stratified_seeded_and_recorded(checkpoints, tmp_path, mnist):
    labels = mnist.train_labels.numpy()
    picked = calibration_indices(labels, 500, seed=0)
    assert len(picked) == len(set(picked.tolist())) == 500
    assert np.bincount(labels[picked], minlength=10).tolist() == [50] * 10
    assert np.array_equal(picked, calibration_indices(labels, 500, seed=0))
    assert not np.array_equal(picked, calibration_indices(labels, 500, seed=1))
    report = export_checkpoint(
        checkpoints("tiny"),
        tmp_path / "s.onnx",
        ExportConfig(quantize="static", calibration_method="percentile", calibration_samples=200, **QUICK),
    )
    calibration = report.settings["calibration"]
    assert calibration["method"] == "percentile" and calibration["samples"] == 200
    assert "tried" not in calibration  # a named method is used alone
    assert len(calibration["manifest_sha256"]) == 64


def _perturb(path, scale=0.5):
    model = onnx.load(str(path))
    for init in model.graph.initializer:
        if init.name.endswith("weight"):
            array = numpy_helper.to_array(init)
            init.CopyFrom(numpy_helper.from_array(array + scale * np.abs(array).mean(), init.name))
            break
    onnx.save(model, str(path))


def test_weights_perturbed_after_export_fail_verification(checkpoints, tmp_path):
    out = tmp_path / "m.onnx"
    export_checkpoint(checkpoints("fashion_bn"), out, ExportConfig(**QUICK))
    assert verify_export(checkpoints("fashion_bn"), out, parity_samples=300).passed
    _perturb(out)
    with pytest.raises(ParityError, match="max |Δlogit|") as info:
        verify_export(checkpoints("fashion_bn"), out, parity_samples=300)
    assert "300 test images" in str(info.value)
    assert info.value.report is not None and not info.value.report.passed  # the figures travel with the error
    assert info.value.report.samples == 300 and info.value.report.max_abs > 1e-4


def test_broken_export_raises_and_leaves_nothing_at_out(checkpoints, tmp_path, monkeypatch):
    import edgecnn.export.from_checkpoint as job

    def export_then_break(*args, **kwargs):
        path = export_onnx(*args, **kwargs)
        _perturb(path, scale=2.0)
        return path

    monkeypatch.setattr(job, "export_onnx", export_then_break)
    for mode in ("none", "static"):
        with pytest.raises(ParityError):
            export_checkpoint(checkpoints("keras_valid"), tmp_path / "m.onnx", ExportConfig(quantize=mode, **QUICK))
    assert list(tmp_path.iterdir()) == []


def test_interrupted_export_leaves_nothing_and_keeps_an_older_file(checkpoints, tmp_path, monkeypatch):
    import edgecnn.export.variants as variants

    out = tmp_path / "m.onnx"
    out.write_bytes(b"older model")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(variants, "measure_report", interrupt)  # after the model is written to its temp file
    with pytest.raises(KeyboardInterrupt):
        export_checkpoint(checkpoints("tiny"), out, ExportConfig(**QUICK))
    assert out.read_bytes() == b"older model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


@pytest.mark.parametrize("mode", ["none", "static"])
def test_baked_preprocessing_matches_the_float_path(checkpoints, tmp_path, mnist, mode):
    float_out, baked_out = tmp_path / "float.onnx", tmp_path / "baked.onnx"
    export_checkpoint(checkpoints("fashion_bn"), float_out, ExportConfig(quantize=mode, **QUICK))
    report = export_checkpoint(
        checkpoints("fashion_bn"), baked_out, ExportConfig(quantize=mode, bake_preprocessing=True, **QUICK)
    )
    assert report.parity.passed
    spec = read_metadata(open_session(baked_out)).input
    assert spec.baked and spec.layout == "NHW" and spec.dtype == "uint8"
    raw = mnist.test_images[:200].numpy()
    baked = open_session(baked_out).run(None, {"input": raw[:, 0]})[0]
    floats = open_session(float_out).run(None, {"input": normalize(raw, [0.1307], [0.3081])})[0]
    if mode == "none":
        assert np.abs(baked - floats).max() <= 1e-5
    else:
        assert (baked.argmax(1) == floats.argmax(1)).mean() >= 0.99


def test_baked_rgb_graph_takes_nhwc_bytes(tmp_path):
    torch.manual_seed(0)
    model = create("tiny", in_channels=3, input_size=(32, 32)).eval()
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    path = export_onnx(
        BakedPreprocessing(model, mean, std), tmp_path / "rgb.onnx", input_shape=(32, 32, 3), input_dtype=torch.uint8
    )
    pixels = np.random.default_rng(0).integers(0, 256, size=(5, 3, 32, 32), dtype=np.uint8)
    spec = InputSpec(shape=(3, 32, 32), baked=True)
    out = open_session(path).run(None, {"input": to_graph_input(pixels, spec, mean, std)})[0]
    with torch.no_grad():
        expected = model(torch.from_numpy(normalize(pixels, mean, std))).numpy()
    assert np.abs(out - expected).max() <= 1e-4


def test_any_module_exports_with_a_really_dynamic_batch(tmp_path):
    torch.manual_seed(0)
    foreign = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(3, 4),
    ).train()
    path = export_onnx(foreign, tmp_path / "f.onnx", input_shape=(1, 20, 20))
    assert foreign.training  # the caller's mode is restored
    session = open_session(path)
    for batch in (1, 2, 7, 64):
        x = np.random.default_rng(batch).standard_normal((batch, 1, 20, 20)).astype(np.float32)
        with torch.no_grad():
            expected = foreign.eval()(torch.from_numpy(x)).numpy()
        assert np.abs(session.run(None, {"input": x})[0] - expected).max() <= 1e-5


def test_unexportable_module_is_an_export_error(tmp_path):
    class DataDependent(torch.nn.Module):
        def forward(self, x):
            return x[x > 0].sum().reshape(1, 1).expand(x.shape[0], 2) if x.sum() > 0 else x[:, :2, 0, 0]

    with pytest.raises(ExportError, match="torch.onnx.export failed"):
        export_onnx(DataDependent(), tmp_path / "x.onnx", input_shape=(3, 4, 4))


def test_verify_rejects_a_model_without_our_metadata(checkpoints, tmp_path):
    plain = export_onnx(create("tiny").eval(), tmp_path / "plain.onnx", input_shape=(1, 28, 28))
    with pytest.raises(ModelFileError, match="no edgecnn metadata"):
        verify_export(checkpoints("tiny"), plain, parity_samples=100)


def test_export_config_refuses_nonsense(tmp_path):
    from edgecnn.errors import ConfigError

    # the mode registry validates its own names (the config imports nothing above it), before anything is read
    with pytest.raises(ConfigError, match="quantization mode 'int4'; choose one of: none, dynamic"):
        export_checkpoint(tmp_path / "no-checkpoint", tmp_path / "m.onnx", ExportConfig(quantize="int4"))
    with pytest.raises(ConfigError, match="opset"):
        ExportConfig(opset=7)
    assert dataclasses.replace(ExportConfig(), quantize="auto").quantize == "auto"


def test_cli_export_verify_and_their_failures(checkpoints, tmp_path):
    from conftest import run_cli

    ckpt, out = checkpoints("tiny"), tmp_path / "cli.onnx"
    proc = run_cli(
        "export",
        str(ckpt),
        "--out",
        str(out),
        "--quantize",
        "dynamic",
        "--parity-samples",
        "500",
        "--latency-iters",
        "3",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["mode"] == "dynamic" and out.is_file() and report_path(out).is_file()
    human = run_cli("verify", str(ckpt), str(out), "--parity-samples", "500")
    assert human.returncode == 0 and "parity passed on 500 test images" in human.stdout
    _perturb(out, scale=3.0)
    for proc in (
        run_cli("verify", str(ckpt), str(out), "--parity-samples", "500"),
        run_cli("export", str(tmp_path / "nope"), "--out", str(tmp_path / "x.onnx")),
        run_cli("export", str(ckpt), "--out", str(tmp_path / "y.onnx"), "--opset", "5"),
    ):
        assert proc.returncode == 1 and proc.stdout == ""
        assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("edgecnn: error: ")
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "y.onnx").exists()
    usage = run_cli("export", str(ckpt), "--out", str(tmp_path / "z.onnx"), "--quantize", "int3")
    assert usage.returncode == 2 and usage.stdout == ""


def test_verify_refuses_a_model_from_another_checkpoint(checkpoints, tmp_path):
    from conftest import run_cli

    out = tmp_path / "m.onnx"
    export_checkpoint(checkpoints("tiny"), out, ExportConfig(**QUICK))
    with pytest.raises(ModelFileError, match="was not exported from"):
        verify_export(checkpoints("fashion_bn"), out, parity_samples=100)
    proc = run_cli("verify", str(checkpoints("fashion_bn")), str(out), "--parity-samples", "100")
    assert proc.returncode == 1 and proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1
    assert "was not exported from" in proc.stderr


def test_exporting_a_from_disk_folder_checkpoint_reads_only_the_images_it_uses(tmp_path, fashion, monkeypatch):
    import warnings

    from image_folders import write_folder

    import edgecnn.data.labelled as labelled
    import edgecnn.training.scan as scan
    from edgecnn.config import TrainConfig
    from edgecnn.data.folders import split_folder
    from edgecnn.training.loop import fit

    folder = tmp_path / "photos"
    write_folder(folder, fashion, per_class=30)
    config = TrainConfig(
        arch="tiny", dataset=str(folder), epochs=1, batch_size=50, val_size=20, max_memory_gb=0, workers=0, device="cpu"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no file of this folder is unreadable
        fit(config, tmp_path / "run")
    splits = split_folder(folder, test_fraction=config.test_fraction, seed=config.seed)
    train_files, test_files = ({path for path, _ in split} for split in (splits.train, splits.test))
    read, real = [], labelled.read_image
    monkeypatch.setattr(labelled, "read_image", lambda path, shape: read.append(path) or real(path, shape))
    monkeypatch.setattr(scan, "scan_folder", lambda *a, **k: pytest.fail("export scanned the folder"))
    report = export_checkpoint(tmp_path / "run", tmp_path / "m.onnx", ExportConfig(parity_samples=40, latency_iters=3))
    assert report.parity.passed and report.parity.samples == 40
    assert len(read) == 40 and set(read) <= test_files  # the parity images only: no training image decoded
    read.clear()
    quantized = ExportConfig(quantize="static", calibration_samples=30, parity_samples=40, max_accuracy_drop=100.0)
    with contextlib.suppress(ParityError):  # a one-epoch tiny net in int8 may miss the agreement gate on 40 images
        export_checkpoint(tmp_path / "run", tmp_path / "q.onnx", dataclasses.replace(quantized, latency_iters=3))
    assert len(set(read) & train_files) == 30 and set(read) <= train_files | test_files  # + the calibration sample
