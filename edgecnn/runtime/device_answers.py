"""The device install's answers: ``edgecnn info`` and ``edgecnn predict`` on a real image run by the arm64
root's edgecnn, against the same commands here. info must say the same of the file (its size, graph, edgecnn
metadata and input); predict must give the same top classes with probabilities within 1e-3."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecnn.errors import TargetError
from edgecnn.runtime.target_run import device_command
from edgecnn.runtime.targets import Target

__all__ = ["with_device_answers", "PROBABILITY_TOLERANCE"]

PROBABILITY_TOLERANCE = 1e-3  # int8 kernels may round a probability differently; the classes must not differ
_INFO_KEYS = ("size_bytes", "graph", "edgecnn", "input")  # what `edgecnn info` says of the file, not the machine


def with_device_answers(row: Any, target: Target, model: Path, image: Path) -> Any:
    """``edgecnn info`` and ``edgecnn predict`` of the device install against the same commands here."""
    commands = {
        "info": ["info", "{model}", "--json"],
        "predict": ["predict", "{model}", "{image}", "--json", "--backend", "onnxruntime", "--top-k", "3"],
    }
    files = {"model": model, "image": image}
    answers, failures = {}, list(row.failures)
    for name, args in commands.items():
        try:
            there = _answer(name, device_command(target, args, files))
            here = _answer(name, _host_command(args, files))
        except (TargetError, ValueError) as exc:
            answers[name], problem = "failed", f"the device install's `edgecnn {name}` failed: {exc}"
            failures.append(problem)
            continue
        same = _same(name, there, here)
        answers[name] = "same as here" if same is None else "differs"
        if same is not None:
            failures.append(f"the device install's `edgecnn {name}` differs from this machine's: {same}")
    return dataclasses.replace(row, failures=tuple(failures), device=answers)


def _host_command(args: Sequence[str], files: dict[str, Path]) -> str:
    argv = [arg.format(**{name: str(path) for name, path in files.items()}) for arg in args]
    env = {**os.environ, "EDGECNN_TUNE": "0"}
    done = subprocess.run([sys.executable, "-m", "edgecnn", *argv], capture_output=True, text=True, env=env)
    if done.returncode:
        raise TargetError(f"here: exit {done.returncode}: {done.stderr.strip()[-300:]}")
    return done.stdout


def _answer(name: str, printed: str) -> Any:
    data = json.loads(printed)
    if name == "info":
        return {key: data.get(key) for key in _INFO_KEYS}
    return [{k: v for k, v in result.items() if k != "file"} for result in data]


def _same(name: str, there: Any, here: Any) -> str | None:
    """None when the answers match (predict: the same classes, probabilities within 1e-3), else how not."""
    if name == "info":
        differing = [key for key in _INFO_KEYS if there.get(key) != here.get(key)]
        return f"{', '.join(differing)} differ" if differing else None
    for a, b in zip(there, here, strict=False):
        if [t["label"] for t in a.get("top_k", [])] != [t["label"] for t in b.get("top_k", [])]:
            return f"top classes {a.get('label')!r} there, {b.get('label')!r} here"
        if abs(float(a["probability"]) - float(b["probability"])) > PROBABILITY_TOLERANCE:
            return f"probability {a['probability']:.4f} there, {b['probability']:.4f} here"
    return None if len(there) == len(here) else "a different number of answers"
