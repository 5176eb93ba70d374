"""Targets: the CPUs a model file is checked on besides this one, as a registry (the backends' style).

A :class:`Target` is a name, what it stands for, how a command runs there (its runner) and the CPU model
QEMU emulates for it. Whether one is ready here is :func:`readiness`, without side effects; what makes it
ready is ``edgecnn targets setup NAME`` (:mod:`edgecnn.runtime.target_setup`), and how a model's logits
are computed there is :mod:`edgecnn.runtime.target_run`. Runners:

- ``host``: this machine's Python and onnxruntime, as they are;
- ``qemu-x86_64``: this machine's own Python and onnxruntime, run by QEMU user mode with a CPU model
  whose CPUID lacks what this one has, so that onnxruntime picks that CPU's kernels;
- ``arm64-root``: a Debian arm64 root (debootstrap) holding a device install of edgecnn (the wheel built
  from this checkout, ``pip install "edgecnn[cpu]"`` with aarch64 wheels), chrooted and run under QEMU;
- ``node``: onnxruntime-web's WebAssembly build, run by Node: the kernels a browser runs.

Everything made lives in :func:`targets_dir` (``$EDGECNN_TARGETS``, else the user cache dir + ``/targets``).
Timing under emulation is not the device's speed, so nothing here measures time.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import edgecnn
from edgecnn.errors import ConfigError

__all__ = [
    "TARGETS_ENV",
    "ALL",
    "Target",
    "Readiness",
    "register_target",
    "get_target",
    "list_targets",
    "parse_targets",
    "readiness",
    "targets_dir",
    "arm64_root",
    "web_dir",
    "source_digest",
    "DEVICE_VENV",
    "DEVICE_STAMP",
    "WEB_STAMP",
    "NODE_MAJOR_MIN",
    "qemu_binary",
    "chroot_binary",
    "system_binary",
]

TARGETS_ENV = "EDGECNN_TARGETS"
ALL = "all"
DEVICE_VENV = "/opt/edgecnn"  # the device install's virtualenv, inside the arm64 root
DEVICE_STAMP = ".edgecnn-device-install"  # in the root: the digest of the edgecnn sources installed there
WEB_STAMP = ".edgecnn-web"  # in the web folder: the onnxruntime-web version installed there
NODE_MAJOR_MIN = 18  # onnxruntime-web's Node floor


@dataclass(frozen=True)
class Target:
    name: str
    stands_for: str
    runner: str  # "host", "qemu-x86_64", "arm64-root" or "node"
    cpu: str | None = None  # the CPU model QEMU emulates
    runtime: str = "onnxruntime"

    @property
    def emulated(self) -> bool:
        return self.runner != "host"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "stands_for": self.stands_for,
            "runner": self.runner,
            "cpu": self.cpu,
            "runtime": self.runtime,
        }


@dataclass(frozen=True)
class Readiness:
    ready: bool
    why: str  # what it runs on when ready, what is missing when not
    make: str = ""  # the one command that makes it ready ("" when ready, or when no command can)

    def to_dict(self) -> dict[str, Any]:
        return {"ready": self.ready, "why": self.why, "make": self.make}


_TARGETS: dict[str, Target] = {}


def register_target(target: Target) -> Target:
    if target.name in _TARGETS or target.name == ALL:
        raise ValueError(f"target {target.name!r} is already registered")
    _TARGETS[target.name] = target
    return target


def get_target(name: str) -> Target:
    try:
        return _TARGETS[name]
    except KeyError as exc:
        raise ConfigError(f"unknown target {name!r}; choose among: {', '.join(_TARGETS)} (or {ALL})") from exc


def list_targets() -> list[str]:
    return list(_TARGETS)


def parse_targets(text: str) -> list[Target]:
    """``all`` or a comma-separated list of names, in registry order, each once."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ConfigError(f"no target named; choose among: {', '.join(_TARGETS)} (or {ALL})")
    if ALL in names:
        return [_TARGETS[name] for name in _TARGETS]
    wanted = {get_target(name).name for name in names}
    return [_TARGETS[name] for name in _TARGETS if name in wanted]


register_target(Target("native", "this machine, as it is", "host"))
register_target(
    Target(
        "x86-64-v3",
        "an x86-64 CPU with AVX2 and FMA but no AVX-512 or VNNI (Haswell to Coffee Lake, Zen 1-3 class): "
        "onnxruntime's int8 kernels add u8×s8 pairs with 16-bit saturation there",
        "qemu-x86_64",
        "Haswell",
    )
)
register_target(
    Target(
        "aarch64-a72",
        "Raspberry Pi 4: Cortex-A72, NEON without the dot-product instructions",
        "arm64-root",
        "cortex-a72",
    )
)
register_target(
    Target(
        "aarch64-a76", "Raspberry Pi 5: Cortex-A76, NEON with the dot-product instructions", "arm64-root", "cortex-a76"
    )
)
register_target(
    Target(
        "wasm",
        "a browser's WebAssembly kernels: onnxruntime-web (wasm, SIMD) under Node",
        "node",
        runtime="onnxruntime-web",
    )
)


def targets_dir() -> Path:
    """``$EDGECNN_TARGETS``, else the user cache dir (the tuning cache's) + ``/targets``."""
    from edgecnn.runtime.tune_cache import cache_dir

    configured = os.environ.get(TARGETS_ENV)
    return Path(configured) if configured else cache_dir() / "targets"


def arm64_root() -> Path:
    return targets_dir() / "arm64-root"


def web_dir() -> Path:
    return targets_dir() / "web"


def source_digest(package: Path | None = None) -> str:
    """The SHA-256 of edgecnn's own files (paths and bytes): the device install is current when its stamp
    holds the digest of the sources this process runs."""
    root = package or Path(edgecnn.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def readiness(target: Target) -> Readiness:
    """Whether ``target`` can run here now, and if not what is missing and the command that makes it."""
    make = f"edgecnn targets setup {target.name}" + ("" if _is_root() else " (as root)")
    if target.runner == "host":
        return Readiness(True, f"{platform.machine()} {platform.processor() or ''}".strip())
    if target.runner == "qemu-x86_64":
        if platform.machine() not in ("x86_64", "AMD64"):
            return Readiness(False, "runs this machine's own Python under QEMU: only on an x86-64 host")
        if not qemu_binary("x86_64"):
            return Readiness(False, "QEMU user mode (qemu-x86_64-static) is not installed", make)
        return Readiness(True, f"QEMU user mode, -cpu {target.cpu}, this Python and onnxruntime")
    if target.runner == "arm64-root":
        return _root_readiness(target, make)
    return _web_readiness(make)


def _root_readiness(target: Target, make: str) -> Readiness:
    root = arm64_root()
    if not qemu_binary("aarch64"):
        return Readiness(False, "QEMU user mode (qemu-aarch64-static) is not installed", make)
    if not (root / DEVICE_VENV.lstrip("/") / "bin" / "python3").exists():
        return Readiness(False, f"no arm64 root with a device install of edgecnn in {root}", make)
    stamp = root / DEVICE_VENV.lstrip("/") / DEVICE_STAMP
    if not stamp.is_file() or stamp.read_text().strip() != source_digest():
        return Readiness(False, f"the device install in {root} is another edgecnn than this one", make)
    if not _is_root():
        return Readiness(False, "the arm64 root runs in a chroot: run edgecnn as root")
    return Readiness(True, f"Debian arm64 root, QEMU user mode -cpu {target.cpu}, edgecnn's device install")


def _web_readiness(make: str) -> Readiness:
    node = shutil.which("node")
    if not node:
        return Readiness(False, f"Node.js (≥ {NODE_MAJOR_MIN}) is not installed")
    stamp = web_dir() / WEB_STAMP
    if not stamp.is_file() or not (web_dir() / "node_modules" / "onnxruntime-web").is_dir():
        return Readiness(False, f"onnxruntime-web is not installed in {web_dir()}", make)
    return Readiness(True, f"onnxruntime-web {stamp.read_text().strip()} under Node ({node})")


def qemu_binary(arch: str) -> str | None:
    return shutil.which(f"qemu-{arch}-static") or shutil.which(f"qemu-{arch}")


def system_binary(name: str) -> str:
    """A system tool by name, /usr/sbin and /sbin searched too (chroot, debootstrap, mount, update-binfmts live
    there, often not on a user's PATH); the bare name when it is nowhere (starting it then says so)."""
    path = os.pathsep.join((os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin", "/bin"))
    return shutil.which(name, path=path) or name


def chroot_binary() -> str:
    return system_binary("chroot")


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0
