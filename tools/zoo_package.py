"""Stage ``package`` of tools/build_zoo.py: a finished run → ``models/NAME/`` with its card.

Per net: the fp32 ONNX and the int8 ONNX ``auto`` chose (static if auto keeps fp32, marked so), each through
``edgecnn export`` with its parity gate on the full test set; the chosen weights as safetensors (card and
config in its header); the training curves and confusion matrix; accuracy of torch, fp32 ONNX and int8 ONNX
on the validation split and the test set; per-class accuracy; parameters and MACs; batch-1 and batch-64
latency of both files, interleaved in one run; ``card.json`` (every figure) and ``card.md`` (zoo_cards.py).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from zoo_cards import write_card, write_index, write_readme
from zoo_recipes import ZOO

from edgecnn.bench.run import run_bench
from edgecnn.config import BenchConfig, ExportConfig, config_to_dict
from edgecnn.export.from_checkpoint import export_checkpoint
from edgecnn.files import CHECKPOINT_NAME, CONFUSION_NAME, CURVES_NAME, METRICS_NAME, atomic_path, report_path
from edgecnn.runtime.predictor import Predictor
from edgecnn.training.architectures import count_parameters
from edgecnn.training.checkpoint import load_checkpoint
from edgecnn.training.data import load_dataset_for, split_validation

__all__ = ["package_all", "package_net", "remeasure_latency"]

INT8_MODES = ("dynamic", "static")


def package_all(names: list[str], runs: Path, models: Path) -> None:
    for name in names:
        started = time.perf_counter()
        print(f"# packaging {name}", flush=True)
        package_net(name, runs, models, started)
    write_readme(models)
    write_index(models)  # last: it records every other file's SHA-256, the README's included


def remeasure_latency(names: list[str], models: Path) -> None:
    """Latency again, on a quiet machine, into the existing cards (the rest of each card stays)."""
    for name in names:
        card = json.loads((models / name / "card.json").read_text())
        card["latency"] = measure_latency({k: models / name / v["path"] for k, v in card["files"].items()})
        write_card(models / name, card, ZOO[name])
        print(f"# {name}: latency measured again", flush=True)
    write_readme(models)
    write_index(models)


def package_net(name: str, runs: Path, models: Path, started: float) -> dict[str, Any]:
    run = runs / name / "edgecnn"
    saved = load_checkpoint(run / CHECKPOINT_NAME)
    out = models / name  # made by the first write (atomic_path), and removed again if that write fails
    files = {"fp32": out / f"{name}.fp32.onnx", "int8": out / f"{name}.int8.onnx"}
    export_checkpoint(run / CHECKPOINT_NAME, files["fp32"], ExportConfig())
    int8_note = _export_int8(run / CHECKPOINT_NAME, files["int8"])
    _save_safetensors(saved, out / f"{name}.safetensors")
    for source, target in (
        (CURVES_NAME, "curves.png"),
        (CONFUSION_NAME, "confusion.png"),
        (METRICS_NAME, METRICS_NAME),
    ):
        _copy(run / source, out / target)
    _copy(runs / name / "tutorial" / METRICS_NAME, out / "tutorial.metrics.json")
    card = {
        "name": name,
        "net": _describe_net(name, saved),
        "int8": int8_note,
        "accuracy": measure_accuracy(saved, files),
        "latency": measure_latency(files),
        "recipes": _recipes(name, runs),
        "files": {k: {"path": p.name, "bytes": p.stat().st_size} for k, p in files.items()},
        "weights_bytes": (out / f"{name}.safetensors").stat().st_size,
    }
    card["build_seconds"] = {
        "train": sum(card["recipes"][r]["train_seconds"] for r in card["recipes"]),
        "package": round(time.perf_counter() - started, 1),
    }
    write_card(out, card, ZOO[name])
    return card


def _export_int8(checkpoint: Path, path: Path) -> dict[str, Any]:
    """``auto``'s pick when it is an int8 mode; else static, with auto's decision kept beside it."""
    report = export_checkpoint(checkpoint, path, ExportConfig(quantize="auto"))
    decision = report.auto.to_dict() if report.auto is not None else None
    if report.mode in INT8_MODES:
        return {"mode": report.mode, "chosen_by": "auto", "auto": decision}
    kept = "fp32" if report.mode == "none" else report.mode
    os.replace(report_path(path), path.with_name(path.name.replace(".onnx", ".auto.report.json")))
    report = export_checkpoint(checkpoint, path, ExportConfig(quantize="static"))
    return {"mode": report.mode, "chosen_by": f"static, because auto kept {kept}", "auto": decision}


def _copy(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:  # a full disk leaves the zoo's previous file, never half a new one
        shutil.copyfile(source, tmp)


def _save_safetensors(saved, path: Path) -> None:
    from safetensors.torch import save

    header = {
        "format": "pt",
        "edgecnn.card": json.dumps(saved.card.to_dict(), sort_keys=True),
        "edgecnn.config": json.dumps(config_to_dict(saved.config), sort_keys=True),
        "edgecnn.best_epoch": str(saved.best_epoch),
    }
    weights = {k: v.contiguous() for k, v in saved.model_state.items()}
    with atomic_path(path) as tmp:
        tmp.write_bytes(save(weights, metadata=header))  # our write: a full disk is a WriteError, not a SafetensorError


def _describe_net(name: str, saved) -> dict[str, Any]:
    model = saved.build_model()
    return {
        "arch": name,
        "parameters": count_parameters(model),
        "macs": count_macs(model, saved.card.input_shape),
        "input_shape": list(saved.card.input_shape),
        "classes": list(saved.card.class_names),
        "normalization": saved.card.normalization.to_dict(),
        "dataset": saved.card.dataset,
        "data_sha256": saved.card.lineage.data_checksum,
        "config_hash": saved.card.lineage.config_hash,
        "best_epoch": saved.best_epoch,
        "epochs": saved.epoch,
    }


def count_macs(model: torch.nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one image through every Conv2d and Linear (the rest is noise)."""
    total = []

    def hook(module, _inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total.append(output[0].numel() * per_output)
        else:
            total.append(module.in_features * module.out_features)

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    with torch.no_grad():
        model(torch.zeros(1, *input_shape))
    for handle in handles:
        handle.remove()
    return int(sum(total))


def measure_accuracy(saved, files: dict[str, Path]) -> dict[str, Any]:
    """Validation and test accuracy of torch, fp32 ONNX and int8 ONNX; per-class test accuracy; int8/fp32
    top-1 agreement. The validation split is the run's own (same size and seed)."""
    data = load_dataset_for(saved.config)
    _, val_idx = split_validation(data.train_labels, saved.config.val_size, saved.config.seed)
    splits = {
        "val": (data.train_images[val_idx], data.train_labels[val_idx]),
        "test": (data.test_images, data.test_labels),
    }
    model = saved.build_model()
    predictors = {k: Predictor(p, threads=2) for k, p in files.items()}
    figures: dict[str, Any] = {}
    for split, (images, labels) in splits.items():
        x = data.normalize(images)
        with torch.no_grad():
            preds = {"torch": torch.cat([model(x[i : i + 1000]).argmax(1) for i in range(0, len(x), 1000)]).numpy()}
        for key, predictor in predictors.items():
            preds[key] = np.concatenate(
                [predictor.logits(x[i : i + 1000].numpy()).argmax(1) for i in range(0, len(x), 1000)]
            )
        truth = labels.numpy()
        figures[split] = {k: round(float((p == truth).mean()), 6) for k, p in preds.items()}
        figures[split]["samples"] = len(truth)
        if split == "test":
            figures["int8_fp32_agreement"] = round(float((preds["int8"] == preds["fp32"]).mean()), 6)
            figures["per_class"] = {
                k: [round(float((p[truth == c] == c).mean()), 4) for c in range(len(data.class_names))]
                for k, p in preds.items()
            }
    return figures


def measure_latency(files: dict[str, Path]) -> dict[str, Any]:
    """p50/p99 at batch 1 and 64 of both files, interleaved in one run (edgecnn bench's engine)."""
    result = run_bench([files["fp32"], files["int8"]], BenchConfig(batch_sizes=(1, 64), iters=300, cold_runs=3))
    rows = {}
    for info, key in zip(result.models, ("fp32", "int8"), strict=True):
        rows[key] = {
            f"b{batch}": {
                k: round(getattr(result.batches[batch][info.name], k), 4) for k in ("p50", "p99", "throughput")
            }
            for batch in result.batches
        }
        rows[key]["cold_start_ms"] = info.cold_start_ms
        rows[key]["threads"] = info.threads
    return {"rows": rows, "environment": result.environment, "spinning": result.spinning, "iters": 300}


def _recipes(name: str, runs: Path) -> dict[str, Any]:
    recipes = {}
    for recipe in ("edgecnn", "tutorial"):
        metrics = json.loads((runs / name / recipe / METRICS_NAME).read_text())
        recipes[recipe] = {
            "config": metrics["config"],
            "threads": metrics["threads"],
            "best_epoch": metrics["best_epoch"],
            "epochs_run": len(metrics["epochs"]),
            "val_accuracy": metrics.get("val_accuracy"),
            "test_accuracy": metrics["test_accuracy"],
            "train_seconds": round(sum(e["seconds"] for e in metrics["epochs"]), 1),
            "curve": [[e["epoch"], e["train_accuracy"], e.get("val_accuracy")] for e in metrics["epochs"]],
        }
    return recipes
