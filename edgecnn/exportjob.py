"""The job behind ``edgecnn export``: checkpoint → fp32 graph → quantized candidate(s) → parity gate →
metadata → ``MODEL.onnx`` and ``MODEL.report.json``, written only once every check has passed.

Everything happens in a temporary directory; the model reaches ``out`` through an atomic rename, so a
failed gate, an error or Ctrl-C leaves nothing at ``out`` (an older file there stays as it was).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from edgecnn.checkpoint import load_checkpoint, model_from_checkpoint
from edgecnn.config import ExportConfig
from edgecnn.data import DatasetBundle, load_dataset
from edgecnn.export import BakedPreprocessing, export_onnx, write_metadata
from edgecnn.files import atomic_path, write_json
from edgecnn.metadata import InputSpec, ModelMetadata
from edgecnn.parity import check_parity
from edgecnn.preprocess import to_graph_input
from edgecnn.quantize import (QuantizationWarning, choose_fastest, compute_op_counts, convert_fp16, op_counts,
                              quantize_dynamic_int8, quantize_static_int8)
from edgecnn.runtime import open_session, read_metadata

__all__ = ["export_checkpoint", "verify_export", "report_path", "load_eval_data", "calibration_indices"]

AUTO_CANDIDATES = ("none", "dynamic", "static")


def report_path(model_path: str | Path) -> Path:
    path = Path(model_path)
    return path.with_name(path.stem + ".report.json")


def load_eval_data(state: dict[str, Any], data_root: str | None) -> DatasetBundle:
    """The dataset the checkpoint was trained on (its test split feeds parity, its train split calibration)."""
    saved = state["config"]
    return load_dataset(saved["dataset"], data_root=data_root or saved.get("data_root"),
                        image_size=saved.get("image_size", 28), test_fraction=saved.get("test_fraction", 0.2),
                        seed=saved.get("seed", 0))


def calibration_indices(labels: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """A seeded, class-stratified sample: equal shares per class, interleaved, ``count`` in all."""
    generator = torch.Generator().manual_seed(seed)
    classes = labels.unique()
    per_class = -(-count // len(classes))
    picks = [(labels == c).nonzero().flatten() for c in classes]
    picks = [m[torch.randperm(len(m), generator=generator)[:per_class]] for m in picks]
    return torch.stack([p[i] for i in range(per_class) for p in picks if i < len(p)])[:count]


@contextlib.contextmanager
def _quiet_quantizers() -> Iterator[list[warnings.WarningMessage]]:
    """onnxruntime's quantizer logs advice through the root logger; keep it off the user's terminal,
    and collect our own QuantizationWarnings for the report card."""
    previous = logging.root.manager.disable  # the caller's own setting comes back afterwards
    logging.disable(max(previous, logging.WARNING))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", QuantizationWarning)
            yield caught
    finally:
        logging.disable(previous)


def export_checkpoint(checkpoint: str | Path, out: str | Path, config: ExportConfig) -> dict[str, Any]:
    """Export, quantize, verify; write ``out`` and its report card; return the report card."""
    out = Path(out)
    state = load_checkpoint(checkpoint)
    model = model_from_checkpoint(state)
    data = load_eval_data(state, config.data_root)
    spec = InputSpec(shape=tuple(state["input_shape"]), baked=config.bake_preprocessing)
    mean, std = state["normalization"]["mean"], state["normalization"]["std"]
    images = data.test_images[:config.parity_samples].numpy()
    labels = data.test_labels[:config.parity_samples].numpy()
    feed = to_graph_input(images, spec, mean, std)
    with tempfile.TemporaryDirectory(prefix="edgecnn-export-") as tmp, _quiet_quantizers() as caught:
        work = Path(tmp)
        graph = BakedPreprocessing(model, mean, std) if spec.baked else model
        fp32 = export_onnx(graph, work / "none.onnx", input_shape=spec.graph_shape, opset=config.opset,
                           input_dtype=torch.uint8 if spec.baked else torch.float32)
        modes = AUTO_CANDIDATES if config.quantize == "auto" else ("none", config.quantize)
        paths, settings = {}, {}
        for mode in dict.fromkeys(modes):
            paths[mode], settings[mode] = _build(mode, fp32, work, config, data, spec, mean, std)
            if mode in ("dynamic", "static") and not _quantized_anything(paths[mode]):
                if config.quantize == "auto":  # the fp32 graph under another name: not a candidate
                    del paths[mode]
                else:
                    hint = (f" (dynamic leaves MatMul/Gemm weights under {config.min_weight_elements:,} "
                            "elements in float)") if mode == "dynamic" else ""
                    warnings.warn(f"{mode}: no node qualified for int8{hint}, so the graph stays fp32",
                                  QuantizationWarning, stacklevel=2)
        decision = None
        if config.quantize == "auto":
            decision = choose_fastest(paths, feed, labels, input_name=spec.name,
                                      max_accuracy_drop=config.max_accuracy_drop, iters=config.latency_iters)
        chosen = decision["chosen"] if decision else config.quantize
        parity = check_parity(model, paths[chosen], images, labels, spec=spec, mean=mean, std=std,
                              exact=chosen == "none", max_accuracy_drop=config.max_accuracy_drop)
        quantization = {**settings[chosen], **({"auto": decision} if decision else {})}
        meta = ModelMetadata(arch=state["arch"], class_names=tuple(state["class_names"]), input=spec,
                             mean=tuple(mean), std=tuple(std), dataset=str(state.get("dataset", "")),
                             fp32_test_accuracy=_trained_accuracy(state), quantization=quantization, parity=parity)
        with atomic_path(out) as final:
            write_metadata(onnx.load(str(paths[chosen])), meta, final)
            read_metadata(open_session(final), source=str(out))  # the runtime loads it and reads it back
            report = _report_card(out, final, fp32, paths[chosen], chosen, config, state, feed, spec,
                                  parity, quantization, decision, [str(w.message) for w in caught])
    write_json(report_path(out), report)  # after the model: a crash between leaves a verified model
    for message in report["warnings"]:
        warnings.warn(message, QuantizationWarning, stacklevel=2)
    return report


def _trained_accuracy(state: dict[str, Any]) -> float | None:
    return state["metrics"][-1]["test_accuracy"] if state["metrics"] else None


def _quantized_anything(path: Path) -> bool:
    return any(entry["quantized"] for entry in compute_op_counts(onnx.load(str(path))).values())


def _build(mode: str, fp32: Path, work: Path, config: ExportConfig, data: DatasetBundle, spec: InputSpec,
           mean: list[float], std: list[float]) -> tuple[Path, dict[str, Any]]:
    target = work / f"{mode}.onnx"
    if mode == "none":
        return fp32, {"mode": "none"}
    if mode == "dynamic":
        return target, quantize_dynamic_int8(fp32, target, ops=config.quantize_ops,
                                             min_weight_elements=config.min_weight_elements)
    if mode == "fp16":
        return target, convert_fp16(fp32, target)
    picked = calibration_indices(data.train_labels, config.calibration_samples, config.seed)
    manifest = {"samples": len(picked), "seed": config.seed, "split": "train", "dataset": data.name,
                "manifest_sha256": hashlib.sha256(",".join(map(str, picked.tolist())).encode()).hexdigest()}
    calibration = to_graph_input(data.train_images[picked].numpy(), spec, mean, std)
    return target, quantize_static_int8(fp32, target, calibration, input_name=spec.name,
                                        method=config.calibration_method, ops=config.quantize_ops,
                                        manifest=manifest)


def _report_card(out: Path, final: Path, fp32: Path, chosen_path: Path, chosen: str, config: ExportConfig,
                 state: dict[str, Any], feed: np.ndarray, spec: InputSpec, parity: dict[str, Any],
                 quantization: dict[str, Any], decision: dict[str, Any] | None,
                 warned: list[str]) -> dict[str, Any]:
    from edgecnn.bench import compare_latency

    before, after = onnx.load(str(fp32)), onnx.load(str(chosen_path))
    if decision:
        latency = {row["candidate"]: row["latency_ms"] for row in decision["table"]}
        latency = {"fp32": latency["none"], "exported": latency[chosen]}
    elif chosen == "none":
        only = compare_latency({"fp32": fp32}, feed, input_name=spec.name, iters=config.latency_iters)["fp32"]
        latency = {"fp32": only, "exported": only}
    else:
        latency = compare_latency({"fp32": fp32, "exported": chosen_path}, feed, input_name=spec.name,
                                  iters=config.latency_iters)
    sizes = {"fp32": fp32.stat().st_size, "exported": final.stat().st_size}
    families_before = compute_op_counts(before)
    return {
        "model": str(out), "arch": state["arch"], "requested": config.quantize, "mode": chosen,
        "input": spec.to_dict(), "opset": config.opset, "settings": quantization,
        "ops_before": op_counts(before), "ops_after": op_counts(after),
        "quantized_ops": {family: {"quantized": entry["quantized"], "of": families_before[family]["nodes"]}
                          for family, entry in compute_op_counts(after).items()},
        "size_bytes": sizes, "size_ratio": round(sizes["exported"] / sizes["fp32"], 4),
        "accuracy": {"fp32": parity["torch_accuracy"], "exported": parity["onnx_accuracy"],
                     "delta_pp": parity["delta_accuracy_pp"], "samples": parity["samples"],
                     "fp32_test_accuracy_at_training": _trained_accuracy(state)},
        "latency_ms_p50": latency,
        "speedup": {b: round(latency["fp32"][b] / latency["exported"][b], 3) for b in latency["fp32"]},
        "parity": parity, "warnings": warned,
    }


def verify_export(checkpoint: str | Path, model_path: str | Path, *, parity_samples: int = 10000,
                  max_accuracy_drop: float | None = None, data_root: str | None = None) -> dict[str, Any]:
    """Re-run the parity gate of an exported model against its checkpoint (``edgecnn verify``).
    The gates follow the model's own metadata: exact for fp32, the quantized gates otherwise."""
    state = load_checkpoint(checkpoint)
    meta = read_metadata(open_session(model_path), source=str(model_path))
    data = load_eval_data(state, data_root)
    budget = max_accuracy_drop if max_accuracy_drop is not None else \
        meta.parity.get("gates", {}).get("max_accuracy_drop_pp", ExportConfig.max_accuracy_drop)
    return check_parity(model_from_checkpoint(state), model_path, data.test_images[:parity_samples].numpy(),
                        data.test_labels[:parity_samples].numpy(), spec=meta.input, mean=meta.mean,
                        std=meta.std, exact=meta.quantization.get("mode") == "none", max_accuracy_drop=budget)
