"""Where a figure was measured: CPU, its int8/fp16 flags, cores, versions; and cold start in a fresh process."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgeCNNError

__all__ = ["environment", "cold_start"]

_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "asimd",
    "asimddp",
    "i8mm",
    "sve",
    "fp16",
)


def environment() -> dict[str, Any]:
    """CPU model and the flags int8/fp16 kernels care about, cores, and the versions that matter."""
    import onnxruntime as ort

    from edgecnn import __version__
    from edgecnn.runtime.session import physical_cores

    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip().lower(), value.strip())
    except OSError:  # not Linux: the platform module's answer stands
        pass
    # x86 names its CPU in "model name"; ARM boards in "Hardware" or "Model" (a Raspberry Pi's board name)
    cpu = (
        fields.get("model name")
        or fields.get("hardware")
        or fields.get("model")
        or platform.processor()
        or platform.machine()
    )
    flags = set((fields.get("flags") or fields.get("features") or "").split())
    named = [f for f in _FLAGS if f in flags]
    if "asimd" in named:
        named[named.index("asimd")] = "neon"
    return {
        "cpu": cpu,
        "cpu_flags": named,
        "cores": os.cpu_count(),
        "physical_cores": physical_cores(),
        "machine": platform.machine(),
        "system": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": ort.__version__,
        "edgecnn": __version__,
        "providers": ort.get_available_providers(),
    }


# A child reports its own peak RSS: VmHWM belongs to the process image and starts afresh at exec,
# unlike ru_maxrss, which a forked child inherits from its (possibly large) parent.
_PEAK = "\nprint(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])\n"


def cold_start(script: str, args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one fresh Python process running ``script``."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", script + _PEAK, *args], capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise EdgeCNNError(f"cold-start process failed: {lines[-1] if lines else proc.returncode}")
    return wall, int(proc.stdout.split()[-1]) / 1024
