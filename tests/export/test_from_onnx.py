"""`edgecnn quantize` on a file edgecnn did not write: torch.onnx.export's own output, calibrated on
real Fashion-MNIST, gated against the fp32 file, with metadata that describes the quantized file."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import plain_torch_export, run_cli

from edgecnn.config import QuantizeConfig
from edgecnn.errors import ConfigError, ModelFileError, ParityError
from edgecnn.export.from_onnx import quantize_onnx
from edgecnn.files import report_path
from edgecnn.runtime import Predictor
from edgecnn.runtime.graphinfo import read_graph_info
from edgecnn.training.checkpoint import load_checkpoint

FASHION = dict(classes=None, mean=(0.286,), std=(0.353,))
QUICK = dict(parity_samples=1000, latency_iters=3)


@pytest.fixture(scope="module")
def plain_onnx(checkpoints, tmp_path_factory):
    """keras_same trained on Fashion-MNIST, exported with torch.onnx.export directly: no edgecnn metadata."""
    path = tmp_path_factory.mktemp("plain") / "plain.onnx"
    model = load_checkpoint(checkpoints("keras_same", "fashion-mnist")).build_model()
    plain_torch_export(model, path)
    assert not any(k.startswith("edgecnn.") for k in read_graph_info(path).metadata)
    return path


def test_quantize_a_plain_torch_export_with_fashion_calibration(plain_onnx, tmp_path, fashion):
    out = tmp_path / "int8.onnx"
    # calibration "auto" (the default): minmax on this one-epoch keras_same misses the 99 % agreement gate
    # (98.8 %), as issue 12 measured on another one; auto tries percentile and entropy too and keeps one that passes
    config = QuantizeConfig(
        mode="static",
        calibration="fashion-mnist",
        mean=(0.286,),
        std=(0.353,),
        max_accuracy_drop=1.0,
        **QUICK,
    )
    report = quantize_onnx(plain_onnx, out, config)
    parity = report.parity
    assert parity.reference == "fp32 onnx" and parity.passed and parity.samples == 1000
    assert parity.top1_agreement >= 0.99 and -parity.delta_accuracy_pp <= 1.0
    assert parity.gates.max_accuracy_drop_pp == 1.0
    # the grayscale stem stays float, pooled before the quantization starts (export/graphs.py)
    assert report.quantized_ops["Conv"] == {"quantized": 2, "of": 3}
    assert [d["kept"] for d in report.settings["shallow_convs"]] == ["float, Relu after MaxPool"]
    predictor = Predictor(out)  # the quantized file now describes itself
    meta = predictor.metadata
    assert meta.quantization["mode"] == "static" and meta.quantization["calibration"]["dataset"] == "fashion-mnist"
    assert meta.quantization["weight_type"] == "int8" and meta.quantization["activation_type"] == "uint8"
    calibration = meta.quantization["calibration"]
    assert calibration == report.settings["calibration"]
    assert [row["method"] for row in calibration["tried"]] == ["minmax", "percentile", "entropy"]
    kept = next(row for row in calibration["tried"] if row["method"] == calibration["method"])
    assert kept["passed"] and kept["top1_agreement"] == parity.top1_agreement  # the gate's own figures
    assert meta.parity["reference"] == "fp32 onnx" and meta.parity["passed"]
    assert predictor.card.class_names == fashion.class_names and predictor.card.dataset == "fashion-mnist"
    assert json.loads(report_path(out).read_text())["mode"] == "static"
    images = fashion.test_images[:300, 0].numpy()
    plain = Predictor(plain_onnx, classes=fashion.class_names, **{k: v for k, v in FASHION.items() if v})
    agree = np.mean(
        predictor.predict_proba(images, fit="stretch").argmax(1) == plain.predict_proba(images, fit="stretch").argmax(1)
    )
    assert agree >= 0.98


def test_dynamic_needs_no_labelled_data_and_says_what_it_was_judged_on(plain_onnx, tmp_path):
    config = QuantizeConfig(mode="dynamic", classes=tuple("abcdefghij"), mean=(0.5,), std=(0.5,), **QUICK)
    report = quantize_onnx(plain_onnx, tmp_path / "d.onnx", config)
    assert report.mode == "dynamic" and report.parity.passed and report.parity.reference == "fp32 onnx"
    assert report.parity.samples == QUICK["parity_samples"] and report.accuracy["fp32"] == 1.0
    assert any("seeded random inputs (no labelled data given" in w for w in report.warnings)
    saved = json.loads((tmp_path / "d.report.json").read_text())
    assert saved["warnings"] == list(report.warnings)


def test_quantize_refuses_what_it_cannot_prove(plain_onnx, tmp_path):
    with pytest.raises(ModelFileError, match="mean="):  # no metadata and no normalization given
        quantize_onnx(plain_onnx, tmp_path / "a.onnx", QuantizeConfig(mode="dynamic", calibration="fashion-mnist"))
    with pytest.raises(ModelFileError, match=r"classes= \(--classes\), mean= \(--mean\), std= \(--std\), calib"):
        quantize_onnx(plain_onnx, tmp_path / "b.onnx", QuantizeConfig(mode="static"))  # all it lacks, at once
    with pytest.raises(ModelFileError, match=r"give calibration= \(--calibration"):  # nothing to calibrate on
        quantize_onnx(
            plain_onnx,
            tmp_path / "b.onnx",
            QuantizeConfig(mode="static", classes=tuple("abcdefghij"), mean=(0.5,), std=(0.5,)),
        )
    # calibrated on one image, the activation ranges clip most others (measured: ~90 % agreement, a 6 pp
    # drop) whichever the method, against a budget of 0 pp: the gate refuses it, naming each method's
    # figures, and nothing is written
    with pytest.raises(ParityError) as info:
        quantize_onnx(
            plain_onnx,
            tmp_path / "c.onnx",
            QuantizeConfig(
                mode="static",
                calibration="fashion-mnist",
                max_accuracy_drop=0,
                calibration_samples=1,
                mean=(0.286,),
                std=(0.353,),
                **QUICK,
            ),
        )
    assert info.value.report.reference == "fp32 onnx"
    figures = r"[\d.]+% accuracy, [\d.]+% agreement, failed"
    assert re.search(
        rf"\(calibration methods tried: minmax {figures}; percentile {figures}; entropy {figures}\)$", str(info.value)
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_cli_quantize_info_and_bench_on_a_plain_export(plain_onnx, tmp_path):
    info = run_cli("info", str(plain_onnx), block_torch=True)
    assert info.returncode == 0, info.stderr
    assert "opsets ai.onnx 18" in info.stdout and "Conv 3" in info.stdout and "no edgecnn metadata" in info.stdout
    shown = json.loads(run_cli("info", str(plain_onnx), "--json", block_torch=True).stdout)
    assert shown["edgecnn"] is None and shown["graph"]["inputs"][0]["shape"] == ["batch", 1, 28, 28]
    bench = run_cli(
        "bench",
        str(plain_onnx),
        "--iters",
        "10",
        "--cold-runs",
        "1",
        "--batch-sizes",
        "1,3",
        "--json",
        "-",
        block_torch=True,
    )
    assert bench.returncode == 0, bench.stderr
    result = json.loads(bench.stdout)
    assert result["models"][0]["quantization"] == "foreign" and result["models"][0]["cold_start_ms"] > 0
    out = tmp_path / "q.onnx"
    proc = run_cli(
        "quantize",
        str(plain_onnx),
        "--out",
        str(out),
        "--mode",
        "auto",
        "--calibration",
        "fashion-mnist",
        "--mean",
        "0.286",
        "--std",
        "0.353",
        "--parity-samples",
        "1000",
        "--latency-iters",
        "3",
        "--json",
        blocked=("torch", "torchvision", "matplotlib"),
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["requested"] == "auto" and report["parity"]["reference"] == "fp32 onnx"
    mode = report["mode"]
    again = json.loads(run_cli("info", str(out), "--json", block_torch=True).stdout)
    assert again["edgecnn"]["quantization"]["mode"] == mode and again["edgecnn"]["parity"]["passed"]
    device = run_cli("quantize", str(plain_onnx), "--out", str(tmp_path / "x.onnx"), block_torch=True)
    assert device.returncode == 1 and "edgecnn[quantize]" in device.stderr and len(device.stderr.splitlines()) == 1
    export = run_cli("export", str(plain_onnx), "--out", str(tmp_path / "y.onnx"), block_torch=True)
    assert export.returncode == 1 and "edgecnn quantize" in export.stderr


def test_predictor_on_a_foreign_model_needs_its_description(plain_onnx, fashion):
    with pytest.raises(ModelFileError, match=r"classes=\[\.\.\.\], mean=\[\.\.\.\], std=\[\.\.\.\]"):
        Predictor(plain_onnx)
    described = Predictor(plain_onnx, classes=fashion.class_names, mean=[0.286], std=[0.353])
    assert described.card.class_names == fashion.class_names and described.fit == "stretch"
    assert described.predict(fashion.test_images[:5, 0].numpy())[0].label in fashion.class_names
    with pytest.raises(ConfigError, match="outputs 10 scores"):
        Predictor(plain_onnx, classes=["a", "b"], mean=[0.286], std=[0.353])
    with pytest.raises(ConfigError, match="layout='NHWC' right"):
        Predictor(plain_onnx, classes=fashion.class_names, mean=[0.286], std=[0.353], layout="NHWC")


def test_a_train_and_val_folder_calibrates_with_the_models_classes_and_another_is_refused(
    plain_onnx, tmp_path, fashion
):
    from image_folders import CLASS_FOLDERS, write_folder

    folder = tmp_path / "photos"
    write_folder(folder / "train", fashion, per_class=50)
    write_folder(folder / "val", fashion, per_class=100, start=50)
    described = dict(classes=CLASS_FOLDERS, mean=(0.286,), std=(0.353,))
    config = QuantizeConfig(mode="static", calibration=str(folder), max_accuracy_drop=1.0, **described, **QUICK)
    report = quantize_onnx(plain_onnx, tmp_path / "q.onnx", config)
    card = Predictor(tmp_path / "q.onnx").card
    assert card.class_names == CLASS_FOLDERS and card.dataset == str(folder)  # not two classes "train" and "val"
    calibration = report.settings["calibration"]
    assert calibration["dataset"] == str(folder) and calibration["samples"] == 500  # from train/, 50 a class
    assert report.parity.samples == 1000 and report.parity.passed  # val/'s images, labelled by their folders
    renamed = tmp_path / "renamed"
    write_folder(renamed / "train", fashion, per_class=2, names=("shirts", "shoes"))
    write_folder(renamed / "val", fashion, per_class=2, names=("shirts", "shoes"))
    args = ["--mode", "dynamic", "--classes", ",".join(CLASS_FOLDERS), "--mean", "0.286", "--std", "0.353"]
    proc = run_cli("quantize", str(plain_onnx), "--out", str(tmp_path / "r.onnx"), "--calibration", str(renamed), *args)
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "holds 2 classes (shirts, shoes); the model predicts 10" in proc.stderr
    assert not (tmp_path / "r.onnx").exists()
