"""Tier 0, the device side: numpy, onnxruntime and Pillow, never torch.

As a model file goes from disk to answers: ``zoo`` and ``zoo_index`` (``zoo:NAME`` → a checked file),
``graphinfo`` (what any .onnx file declares, read without the onnx package), ``install`` (which onnxruntime
this process has), ``threads`` (the thread policy), ``session`` (providers, threads, spinning, load
errors), ``backends`` (the engines — onnxruntime, OpenVINO — behind one ``run(x)``), ``metadata`` (card +
file facts in ``metadata_props``), ``foreign`` (the caller's description of a model without them),
``images`` (what users hand in → upright uint8 images), ``guards`` (the size limits every input and a graph's
declared input are held to; the array checks), ``framing`` (a photo →
the model's H×W), ``preprocess`` (pixels → graph input), ``scores`` (what comes out, and the checks on both
ends), ``predictor`` (:class:`Predictor`) and ``result_files`` (``predict --output``: rows in CSV, JSONL or
Parquet, resumable).

The fastest correct configuration, measured where the model runs: ``fingerprint`` (the machine a choice was
measured on, and this one), ``timing`` (engines timed interleaved, percentiles), ``gates`` (what "agrees"
means), ``fastest`` (auto's candidates, table and rule), ``candidates`` (what export's auto measures),
``probe`` (the real test images a device gates on), ``tuning`` (``edgecnn tune``: the search within a
budget), ``tune_cache`` (the per-machine cache) and ``auto`` (what ``backend="auto"`` runs, and why).

Verified on the CPUs users deploy to: ``targets`` (the registry: native, x86-64-v3, aarch64-a72/a76, wasm; ready
or not), ``target_setup`` (``edgecnn targets setup``: QEMU, the Debian arm64 root and its device install,
onnxruntime-web), ``target_run`` (files onto a target, a command there), ``target_logits`` (the runner a target's
Python runs; ``web_logits.mjs`` is Node's), ``checking`` (``edgecnn check``: each target judged against the
host's reference), ``device_answers`` (the device install's ``info`` and ``predict`` against this
machine's) and ``metadata_edit`` (``--record``: one metadata entry rewritten without the onnx package).
"""

from __future__ import annotations

from edgecnn.runtime.backends import BackendWarning
from edgecnn.runtime.predictor import Prediction, Predictor
from edgecnn.runtime.session import ProviderWarning

__all__ = ["Predictor", "Prediction", "ProviderWarning", "BackendWarning"]
