"""Where a figure was measured: CPU, its int8/fp16 flags, cores, versions; and cold start in a fresh process."""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from typing import Any

import numpy as np

from edgecnn.errors import EdgeCNNError

__all__ = ["environment", "cold_start"]


def environment() -> dict[str, Any]:
    """CPU model and the flags int8/fp16 kernels care about (the machine's fingerprint), cores, and the versions
    that matter."""
    import onnxruntime as ort

    from edgecnn import __version__
    from edgecnn.runtime.fingerprint import this_machine

    machine = this_machine()
    return {
        "cpu": machine.cpu,
        "cpu_flags": ["neon" if flag == "asimd" else flag for flag in machine.flags],
        "cores": machine.logical_cores,
        "physical_cores": machine.physical_cores,
        "machine": machine.machine,
        "system": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": ort.__version__,
        "edgecnn": __version__,
        "providers": ort.get_available_providers(),
        "fingerprint": machine.to_dict(),
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
