"""``edgecnn bundle MODEL --target mobile``: a model packaged for onnxruntime-mobile (Android, iOS), checked.

The folder holds the model in onnxruntime's ORT format (``NAME.ort``, converted by onnxruntime's own
``convert_onnx_models_to_ort`` with the optimisations fixed for an ARM CPU, as onnxruntime advises for the CPU
execution provider on phones), the operators a reduced onnxruntime build must include
(``NAME.required_operators.config``, for ``build.py --include_ops_by_config``), the preprocessing contract an
app must follow (``preprocessing.json``: input name, size, layout, dtype, normalisation or uint8 input baked in,
the framing, when to invert, the classes), and ``bundle.json``: what the target costs (model bytes, operators,
parameters, MACs, peak activation memory at batch 1, the ``.ort`` file's latency on this machine) and the
parity of the ``.ort`` file against the ``.onnx`` on the model's probe images (real test images for the built-in
datasets), held to the precision's gates. A bundle whose ``.ort`` file fails its gates is not written.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import ExportError, ParityError
from edgecnn.files import atomic_path, check_writable

__all__ = ["bundle_mobile", "preprocessing_contract"]

_LATENCY_RUNS = 200  # batch-1 runs timed on this machine: enough for a stable median of a sub-millisecond call


def bundle_mobile(model: str | Path, out: str | Path, *, say: Any = print) -> dict[str, Any]:
    """Write the mobile bundle of ``model`` into the folder ``out``; the bundle's report (bundle.json)."""
    from edgecnn.export.costs import graph_costs
    from edgecnn.runtime import Predictor
    from edgecnn.runtime.probe import probe_for

    model, out = Path(model), Path(out)
    check_writable(out, directory=True, what="--out")
    predictor = Predictor(model, backend="onnxruntime")
    name = model.name.removesuffix(".onnx")
    with tempfile.TemporaryDirectory(prefix="edgecnn-mobile-") as tmp:
        ort_file, config = _convert(model, Path(tmp), name)
        probe = probe_for(predictor.metadata)
        parity = _parity(model, ort_file, predictor, probe)
        costs = graph_costs(model)
        operators = [line for line in config.read_text().splitlines() if line and not line.startswith("#")]
        report = {
            "target": "mobile",
            "model": model.name,
            "format": "ORT (optimisations fixed for ARM; onnxruntime's convert_onnx_models_to_ort)",
            "bytes": {"onnx": model.stat().st_size, "ort": ort_file.stat().st_size},
            "reduced_build": {"operator_lines": operators, "operators": _count_ops(operators)},
            "costs": costs.to_dict(),
            "parity": parity,
            "latency_ms_here": _latency(ort_file, probe.feed[:1]),
        }
        out.mkdir(parents=True, exist_ok=True)
        for source in (ort_file, config):
            with atomic_path(out / source.name) as target:
                shutil.copyfile(source, target)
    _write_json(out / "preprocessing.json", preprocessing_contract(predictor))
    _write_json(out / "bundle.json", report)
    say(f"{out}: {name}.ort ({report['bytes']['ort']:,} bytes), {report['reduced_build']['operators']} operators")
    return report


def _convert(model: Path, tmp: Path, name: str) -> tuple[Path, Path]:
    source = tmp / "in" / f"{name}.onnx"
    source.parent.mkdir()
    shutil.copyfile(model, source)
    command = [sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", str(source)]
    command += ["--output_dir", str(tmp / "out"), "--optimization_style", "Fixed", "--target_platform", "arm"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    ort_file, config = tmp / "out" / f"{name}.ort", tmp / "out" / f"{name}.required_operators.config"
    if done.returncode or not ort_file.is_file() or not config.is_file():
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise ExportError(f"onnxruntime could not convert {model} to the ORT format: {last[0]}")
    return ort_file, config


def _parity(model: Path, ort_file: Path, predictor: Any, probe: Any) -> dict[str, Any]:
    """The .ort file against the .onnx on the probe images, held to the precision's gates."""
    from edgecnn.config import MAX_ACCURACY_DROP
    from edgecnn.runtime.gates import gates_for_precision

    logits = [_logits(str(path), probe.feed) for path in (model, ort_file)]
    onnx_logits, ort_logits = logits
    agreement = float(np.mean(onnx_logits.argmax(1) == ort_logits.argmax(1)))
    max_abs = float(np.max(np.abs(onnx_logits - ort_logits)))
    accuracy = {}
    if probe.labels is not None:
        accuracy = {
            k: float(np.mean(v.argmax(1) == probe.labels)) for k, v in (("onnx", onnx_logits), ("ort", ort_logits))
        }
    gates = gates_for_precision(predictor.precision, MAX_ACCURACY_DROP)
    failures = gates.failures(
        max_abs=max_abs,
        agreement=agreement,
        reference_accuracy=accuracy.get("onnx", 0.0),
        accuracy=accuracy.get("ort", 0.0),
        reference=".onnx",
    )
    if failures:
        raise ParityError(f"{ort_file.name} disagrees with {model.name} on {probe.source}: {'; '.join(failures)}")
    return {
        "images": probe.source,
        "top1_agreement": agreement,
        "max_abs_logit": max_abs,
        "accuracy": accuracy,
        "gates": gates.to_dict(),
        "passed": True,
    }


def _logits(path: str, feed: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: feed[i : i + 256]})[0] for i in range(0, len(feed), 256)])


def _latency(ort_file: Path, x: np.ndarray) -> dict[str, float]:
    """The .ort file's batch-1 median on this machine (one thread, as a phone app's CPU provider often runs)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(ort_file), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    samples = []
    for _ in range(_LATENCY_RUNS):
        started = time.perf_counter()
        session.run(None, {name: x})
        samples.append(time.perf_counter() - started)
    return {"p50": float(np.median(samples) * 1e3), "runs": _LATENCY_RUNS, "threads": 1}


def preprocessing_contract(predictor: Any) -> dict[str, Any]:
    """What an app must do to an image before the graph, as the Predictor does it (runtime/preprocess.py)."""
    card, spec = predictor.metadata.card, predictor.metadata.input
    return {
        "input": spec.to_dict(),
        "graph_shape_batch_1": [1, *spec.graph_shape],
        "pixels": "uint8, channels in RGB order" if spec.shape[0] == 3 else "uint8 grey (ITU-R 601-2 luma of RGB)",
        "normalization": None if spec.baked else card.normalization.to_dict(),
        "arithmetic": "baked into the graph" if spec.baked else "x = (pixel / 255 - mean[c]) / std[c], float32",
        "framing": {"default": predictor.fit, "modes": "runtime/framing.py: stretch, pad, crop, object, digit"},
        "invert_light_backgrounds": predictor.inverts_light_backgrounds,
        "classes": list(card.class_names),
        "output": "logits, N x classes float32; probabilities = softmax(logits)",
    }


def _count_ops(lines: list[str]) -> int:
    return sum(len(line.split(";")[-1].split(",")) for line in lines)


def _write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
