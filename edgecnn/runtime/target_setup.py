"""Making targets ready: ``edgecnn targets setup [NAME ...]``. Idempotent: what is ready is left alone.

- QEMU user mode (x86-64-v3, aarch64-*): Debian's ``qemu-user-static``, with apt-get, as root.
- The arm64 root (aarch64-*): ``debootstrap --arch=arm64 --variant=minbase`` of Debian bookworm (Python 3.11,
  as aarch64 wheels of onnxruntime, numpy and Pillow exist for it), its second stage run by QEMU through
  binfmt_misc; made in a ``.partial`` folder and renamed when whole. Then the device install: the wheel
  built from this checkout (or ``--wheel``), ``pip install "WHEEL[cpu]"`` into ``/opt/edgecnn`` inside
  the root, under QEMU, stamped with the sources' digest; a changed checkout re-installs only the wheel.
  The host's ``/etc/resolv.conf`` and CA bundle are copied in so pip reaches the index as the host does;
  ``/sys`` and ``/proc`` are not mounted (onnxruntime's cpuinfo crashes under QEMU on the host's ``/sys``).
- wasm: ``npm install onnxruntime-web`` into the web folder, beside the Node runner.

Each step says what it does on stderr (``log``); a step that cannot run here is one TargetError line
saying what is missing (not root, not Debian/Ubuntu, no Node).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import edgecnn
from edgecnn.errors import TargetError
from edgecnn.runtime.target_run import ROOT_QEMU
from edgecnn.runtime.targets import (
    DEVICE_STAMP,
    DEVICE_VENV,
    NODE_MAJOR_MIN,
    WEB_STAMP,
    Target,
    arm64_root,
    chroot_binary,
    qemu_binary,
    readiness,
    source_digest,
    system_binary,
    targets_dir,
    web_dir,
)

__all__ = ["setup_targets", "DEBIAN_SUITE", "DEBIAN_MIRROR_ENV", "ONNXRUNTIME_WEB"]

DEBIAN_SUITE = "bookworm"  # Python 3.11: the aarch64 wheels edgecnn[cpu] needs exist for it
DEBIAN_MIRROR_ENV = "EDGECNN_DEBIAN_MIRROR"
ONNXRUNTIME_WEB = "onnxruntime-web@^1.31.1"  # the release the wasm target was first checked with, or newer 1.x
_ROOT_PACKAGES = "python3,python3-venv,ca-certificates"
_HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
Log = Callable[[str], None]


def setup_targets(targets: Sequence[Target], *, wheel: Path | None = None, log: Log = print) -> None:
    """Make each of ``targets`` ready (a ready one is left as it is)."""
    targets_dir().mkdir(parents=True, exist_ok=True)
    with _locked():
        for target in targets:
            if readiness(target).ready:
                log(f"{target.name}: ready")
                continue
            if target.runner == "qemu-x86_64":
                _apt_install(["qemu-user-static"], log)
            elif target.runner == "arm64-root":
                _make_root(log)
                _device_install(wheel, log)
            elif target.runner == "node":
                _install_web(log)
            state = readiness(target)
            if not state.ready:
                raise TargetError(f"{target.name} is still not ready: {state.why}")
            log(f"{target.name}: ready ({state.why})")


@contextmanager
def _locked() -> Iterator[None]:
    with open(targets_dir() / ".setup.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second setup waits for the first
        yield


def _apt_install(packages: list[str], log: Log) -> None:
    missing = [p for p in packages if not _installed(p)]
    if not missing:
        return
    if system_binary("apt-get") == "apt-get":
        raise TargetError(
            f"{', '.join(missing)} missing, and this is not Debian/Ubuntu: install them with your package manager"
        )
    if os.geteuid() != 0:
        raise TargetError(f"{', '.join(missing)} missing: run `edgecnn targets setup` as root (it uses apt-get)")
    log(f"setup: apt-get install {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = system_binary("apt-get")
    _step([apt, "update"], "apt-get update", env=env)
    _step([apt, "install", "-y", "--no-install-recommends", *missing], "apt-get install", env=env)


def _installed(package: str) -> bool:
    tools = {
        "qemu-user-static": lambda: qemu_binary("aarch64") and qemu_binary("x86_64"),
        "binfmt-support": lambda: system_binary("update-binfmts") != "update-binfmts",
    }
    probe = tools.get(package, lambda: system_binary(package) != package)
    return bool(probe())


def _make_root(log: Log) -> None:
    root = arm64_root()
    if (root / "usr" / "bin" / "python3").exists():
        return
    _apt_install(["qemu-user-static", "debootstrap", "binfmt-support"], log)
    _enable_binfmt()
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # an interrupted one starts over
    mirror = os.environ.get(DEBIAN_MIRROR_ENV, "http://deb.debian.org/debian")
    log(f"setup: debootstrap {DEBIAN_SUITE} arm64 into {root} (several minutes under QEMU)")
    command = [system_binary("debootstrap"), "--arch=arm64", "--variant=minbase", f"--include={_ROOT_PACKAGES}"]
    _step([*command, DEBIAN_SUITE, str(partial), mirror], "debootstrap")
    os.replace(partial, root)


def _enable_binfmt() -> None:
    """debootstrap's second stage runs arm64 programs: the kernel hands them to QEMU through binfmt_misc."""
    place = Path("/proc/sys/fs/binfmt_misc")
    if not (place / "register").exists():
        _step([system_binary("mount"), "-t", "binfmt_misc", "binfmt_misc", str(place)], "mounting binfmt_misc")
    if not (place / "qemu-aarch64").exists():
        _step([system_binary("update-binfmts"), "--enable", "qemu-aarch64"], "update-binfmts --enable qemu-aarch64")


def _device_install(wheel: Path | None, log: Log) -> None:
    root = arm64_root()
    digest = source_digest()  # of the sources the wheel is built from, before it is built
    _prepare_root(root)
    venv = root / DEVICE_VENV.lstrip("/")
    run = [chroot_binary(), str(root), ROOT_QEMU, f"{DEVICE_VENV}/bin/python3", "-m", "pip"]
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "PIP_CERT": "/etc/edgecnn-ca.crt",
    }
    env.update({k: v for k, v in os.environ.items() if k in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL") and "://" in v})
    if not (venv / "bin" / "python3").exists():
        log(f"setup: python3 -m venv {DEVICE_VENV} in the arm64 root")
        _step([chroot_binary(), str(root), ROOT_QEMU, "/usr/bin/python3", "-m", "venv", DEVICE_VENV], "venv", env=env)
    with tempfile.TemporaryDirectory(dir=root / "tmp") as tmp:
        built = wheel or _build_wheel(Path(tmp), log)
        inside = f"/tmp/{Path(tmp).name}/{built.name}"
        if wheel:
            shutil.copyfile(wheel, Path(tmp) / wheel.name)
        log(f"setup: pip install '{built.name}[cpu]' in the arm64 root (aarch64 wheels, under QEMU)")
        _step([*run, "install", "--quiet", f"{inside}[cpu]"], "pip install in the arm64 root", env=env)
        _step([*run, "install", "--quiet", "--no-deps", "--force-reinstall", inside], "pip install the wheel", env=env)
    (venv / DEVICE_STAMP).write_text(digest + "\n")


def _prepare_root(root: Path) -> None:
    """QEMU inside the root (the chroot runs it), and the host's name resolution and CA bundle."""
    qemu = qemu_binary("aarch64")
    if not qemu:
        raise TargetError("qemu-aarch64-static is not installed: run `edgecnn targets setup` as root")
    inside = root / ROOT_QEMU.lstrip("/")
    inside.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(qemu, inside)
    for source, name in ((Path("/etc/resolv.conf"), "etc/resolv.conf"), (_HOST_CA, "etc/edgecnn-ca.crt")):
        if source.is_file():
            (root / name).unlink(missing_ok=True)  # resolv.conf may be a dangling link inside the root
            shutil.copyfile(source, root / name)


def _build_wheel(out: Path, log: Log) -> Path:
    checkout = Path(edgecnn.__file__).resolve().parents[1]
    if not (checkout / "pyproject.toml").is_file():
        raise TargetError("the aarch64 device install is built from a checkout of edgecnn: pass --wheel PATH")
    log(f"setup: building the edgecnn wheel from {checkout}")
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out)]
    _step([*command, str(checkout)], "building the wheel")
    wheels = sorted(out.glob("edgecnn-*.whl"))
    if not wheels:
        raise TargetError("building the edgecnn wheel produced no wheel")
    return wheels[-1]


def _install_web(log: Log) -> None:
    node = shutil.which("node")
    npm = shutil.which("npm")
    if not node or not npm:
        raise TargetError(
            f"the wasm target needs Node.js ≥ {NODE_MAJOR_MIN} and npm: install them (Debian: apt-get install npm)"
        )
    major = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip().lstrip("v").split(".")[0]
    if not major.isdigit() or int(major) < NODE_MAJOR_MIN:
        raise TargetError(f"the wasm target needs Node.js ≥ {NODE_MAJOR_MIN}; this one is {major or 'unknown'}")
    folder = web_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text(json.dumps({"private": True, "type": "module"}) + "\n")
    log(f"setup: npm install {ONNXRUNTIME_WEB} in {folder}")
    _step([npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", ONNXRUNTIME_WEB], "npm install", cwd=folder)
    version = json.loads((folder / "node_modules" / "onnxruntime-web" / "package.json").read_text())["version"]
    (folder / WEB_STAMP).write_text(version + "\n")


def _step(command: list[str], what: str, *, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise TargetError(f"{what}: cannot start {command[0]}: {exc.strerror or exc}") from exc
    if done.returncode:
        said = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        raise TargetError(f"{what} failed (exit {done.returncode}): {' | '.join(said[-3:])}")
