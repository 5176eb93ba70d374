"""The machine a figure or a choice was measured on, as the kernels see it: the CPU's vendor and model, the ISA
flags that pick int8/fp16/bf16 kernels, physical and logical cores, the OS and architecture, and the versions
of the backends that ran. ``auto`` records it with its choice; ``edgecnn info`` compares it with this machine.

Two machines with the same fingerprint run the same kernels with the same threads: a choice measured on one
holds on the other. Anything else (another CPU model with the same flags included: an AMD EPYC and an Intel
Xeon with the same flags time differently, issue 23) is a different machine."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.runtime.session import physical_cores

__all__ = ["KERNEL_FLAGS", "Fingerprint", "this_machine", "read_fingerprint", "compare_with_this_machine"]

# The CPU flags that decide which kernels run: x86 int8 (VNNI), bf16 and AMX; ARM NEON, dot product, int8
# matrix multiply, SVE and fp16 arithmetic.
KERNEL_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "asimd",
    "asimddp",
    "i8mm",
    "sve",
    "fphp",
    "asimdhp",
)
_BACKENDS = {"onnxruntime": ("onnxruntime", "onnxruntime-gpu"), "openvino": ("openvino",)}


@dataclass(frozen=True)
class Fingerprint:
    vendor: str  # x86: "GenuineIntel", "AuthenticAMD"; ARM: the implementer code ("0x41": Arm)
    cpu: str  # the model name (x86), or the part and board (ARM)
    flags: tuple[str, ...]  # those of KERNEL_FLAGS the CPU has, in that order
    physical_cores: int
    logical_cores: int
    system: str  # "Linux", "Darwin", "Windows"
    machine: str  # "x86_64", "aarch64", …
    backends: Mapping[str, str] = field(default_factory=dict)  # installed backend → its version

    @property
    def key(self) -> str:
        """A short stable digest of every field: what a per-machine cache is keyed by."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def differences(self, other: Fingerprint) -> list[str]:
        """The fields in which ``other`` differs from this one (empty: the same machine, as the kernels see it)."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [name for name in mine if mine[name] != theirs[name]]

    def summary(self) -> str:
        """One phrase: "Intel(R) Xeon(R) Processor, 2 cores (2 logical), onnxruntime 1.32.0"."""
        versions = ", ".join(f"{name} {version}" for name, version in sorted(self.backends.items()))
        return f"{self.cpu}, {self.physical_cores} cores ({self.logical_cores} logical), {self.machine}" + (
            f", {versions}" if versions else ""
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "vendor": self.vendor,
            "cpu": self.cpu,
            "flags": list(self.flags),
            "physical_cores": self.physical_cores,
            "logical_cores": self.logical_cores,
            "system": self.system,
            "machine": self.machine,
            "backends": dict(sorted(self.backends.items())),
        }


def read_fingerprint(data: Any) -> Fingerprint | None:
    """A fingerprint recorded in a file (anyone may have written it): None when it is missing or malformed."""
    if not isinstance(data, Mapping):
        return None
    try:
        fingerprint = Fingerprint(
            vendor=str(data["vendor"]),
            cpu=str(data["cpu"]),
            flags=tuple(str(f) for f in data["flags"]),
            physical_cores=int(data["physical_cores"]),
            logical_cores=int(data["logical_cores"]),
            system=str(data["system"]),
            machine=str(data["machine"]),
            backends={str(k): str(v) for k, v in dict(data["backends"]).items()},
        )
    except (KeyError, TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        return None
    return fingerprint


def compare_with_this_machine(recorded: Any) -> dict[str, Any]:
    """Where a recorded choice was measured against this machine: ``recorded`` (None when the file records no
    machine, or a malformed one), ``this``, ``same`` (None: cannot tell) and the fields that differ."""
    theirs, mine = read_fingerprint(recorded), this_machine()
    differs = mine.differences(theirs) if theirs is not None else []
    return {
        "recorded": theirs.to_dict() if theirs is not None else None,
        "this": mine.to_dict(),
        "same": None if theirs is None else not differs,
        "differs": differs,
    }


@functools.cache
def this_machine() -> Fingerprint:
    """The fingerprint of the machine this process runs on (read once)."""
    fields = _cpuinfo()
    flags = set((fields.get("flags") or fields.get("features") or "").split())
    cpu = fields.get("model name") or _arm_cpu(fields) or platform.processor() or platform.machine()
    return Fingerprint(
        vendor=fields.get("vendor_id") or fields.get("cpu implementer") or platform.machine(),
        cpu=cpu,
        flags=tuple(f for f in KERNEL_FLAGS if f in flags),
        physical_cores=physical_cores(),
        logical_cores=os.cpu_count() or 1,
        system=platform.system(),
        machine=platform.machine(),
        backends=_backend_versions(),
    )


def _cpuinfo() -> dict[str, str]:
    """The first value of each /proc/cpuinfo key, keys lower-cased (empty off Linux)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    return fields


def _arm_cpu(fields: Mapping[str, str]) -> str:
    """ARM names no model: its part number (0xd08 is a Cortex-A72) and the board, where the kernel says."""
    part = fields.get("cpu part")
    board = fields.get("model") or fields.get("hardware")
    return " ".join(x for x in (f"part {part}" if part else "", board or "") if x)


def _backend_versions() -> dict[str, str]:
    """Installed backends' versions, read from their distributions' metadata (nothing is imported)."""
    found = {}
    for backend, distributions in _BACKENDS.items():
        for name in distributions:
            try:
                found[backend] = importlib.metadata.version(name)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return found
