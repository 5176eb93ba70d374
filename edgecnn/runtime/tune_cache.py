"""The per-machine tuning cache: what ``edgecnn tune`` (or a Predictor's first load) measured fastest for one
model file on one machine, so that the next process starts on it without measuring again.

One JSON file per (model file, machine): ``CACHE/tune/SHA256-KEY.json``, where SHA256 is the file's and KEY
the machine fingerprint's (:attr:`~edgecnn.runtime.fingerprint.Fingerprint.key`: CPU, kernel flags, cores,
OS, backend versions — an onnxruntime upgrade is another machine). A changed file has another SHA-256, so
its old entry is never read. A tuning among several files (a zoo net's variants) is keyed by the SHA-256 of
their SHA-256s, and one with its threads pinned (``edgecnn serve --threads 1``) gets ``-tN`` after KEY.
CACHE is ``$EDGECNN_CACHE``, else the user cache dir (``$XDG_CACHE_HOME`` or
``~/.cache`` on Linux, ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows) + ``/edgecnn``.

Entries are written atomically (temp file + rename) and never touch the model file; one that cannot be
written (a read-only or full disk) leaves the choice "tuned, not cached", said in one debug line. An entry
is read strictly: anything malformed, or recorded for another file or machine, is no entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.errors import WriteError, describe
from edgecnn.files import atomic_path
from edgecnn.runtime.backends import OPENVINO_PRECISIONS
from edgecnn.runtime.fingerprint import Fingerprint, read_fingerprint

__all__ = ["CACHE_ENV", "CACHE_SCHEMA", "TunedChoice", "cache_dir", "entry_path", "read_entry", "write_entry"]

CACHE_ENV = "EDGECNN_CACHE"
CACHE_SCHEMA = 1
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TunedChoice:
    """What runs a model file on this machine, and the measurements behind it."""

    candidates: Mapping[str, str]  # the files tuned among: quantization mode → SHA-256
    file: str  # the name of the file chosen among them
    file_sha256: str
    backend: str  # "onnxruntime" or "openvino"
    hint: str | None  # OpenVINO's precision hint; None on onnxruntime
    precision: str  # what the compute really ran in
    threads: int
    spinning: bool
    machine: Fingerprint
    pinned_threads: int | None = None  # the tuning ran every configuration with these threads
    decision: Mapping[str, Any] = field(default_factory=dict)  # the table and rule (AutoDecision.to_dict())
    probe: str = ""  # what the configurations were gated on
    budget_s: float | None = None
    elapsed_s: float = 0.0

    def summary(self) -> str:
        """ "openvino int8 (static file), 2 threads"; "onnxruntime int8, 1 thread, spinning"."""
        spin = ", spinning" if self.backend == "onnxruntime" and self.threads > 1 and self.spinning else ""
        return f"{self.backend} {self.precision} ({self.file}), {self.threads} thread{'s' * (self.threads > 1)}{spin}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": CACHE_SCHEMA,
            "candidates": dict(sorted(self.candidates.items())),
            "pinned_threads": self.pinned_threads,
            "file": self.file,
            "file_sha256": self.file_sha256,
            "backend": self.backend,
            "hint": self.hint,
            "precision": self.precision,
            "threads": self.threads,
            "spinning": self.spinning,
            "machine": self.machine.to_dict(),
            "probe": self.probe,
            "budget_s": self.budget_s,
            "elapsed_s": round(self.elapsed_s, 3),
            "decision": dict(self.decision),
        }


def cache_dir() -> Path:
    """``$EDGECNN_CACHE``, else this user's cache folder for edgecnn (see the module docstring)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    system = platform.system()
    if system == "Darwin":
        base = Path.home() / "Library" / "Caches"
    elif system == "Windows":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edgecnn"


def entry_path(
    candidates: Mapping[str, str], machine: Fingerprint, pinned_threads: int | None = None, root: Path | None = None
) -> Path:
    """Where the entry for tuning ``candidates`` (mode → SHA-256) on ``machine`` lives."""
    digests = sorted(candidates.values())
    name = digests[0] if len(digests) == 1 else hashlib.sha256("+".join(digests).encode()).hexdigest()
    pinned = f"-t{pinned_threads}" if pinned_threads else ""
    return (root or cache_dir()) / "tune" / f"{name}-{machine.key}{pinned}.json"


def read_entry(
    candidates: Mapping[str, str], machine: Fingerprint, pinned_threads: int | None = None, root: Path | None = None
) -> TunedChoice | None:
    """The entry for these files on this machine, or None (none, unreadable, malformed, or for another)."""
    path = entry_path(candidates, machine, pinned_threads, root)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as exc:
        _log.debug("tuning cache entry %s not read: %s", path, describe(exc))
        return None
    choice = _parse(data)
    if (
        choice is None
        or dict(choice.candidates) != dict(candidates)
        or choice.machine != machine
        or choice.pinned_threads != pinned_threads
        or choice.file_sha256 not in candidates.values()
    ):
        _log.debug("tuning cache entry %s ignored: malformed, or for another file or machine", path)
        return None
    return choice


def write_entry(choice: TunedChoice, root: Path | None = None) -> tuple[Path | None, str]:
    """Write ``choice`` atomically: (its path, "") — or (None, why) when the cache cannot take it."""
    path = entry_path(choice.candidates, choice.machine, choice.pinned_threads, root)
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(choice.to_dict(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    except (OSError, WriteError) as exc:  # WriteError: atomic_path's word for its own OSError
        why = f"the tuning cache {path.parent} cannot be written ({describe(exc)}): tuned, not cached"
        _log.debug(why)
        return None, why
    return path, ""


def _parse(data: Any) -> TunedChoice | None:
    if not isinstance(data, Mapping) or data.get("schema") != CACHE_SCHEMA:
        return None
    machine = read_fingerprint(data.get("machine"))
    try:
        backend, hint, threads, spinning = data["backend"], data["hint"], data["threads"], data["spinning"]
        texts = [data[k] for k in ("file", "file_sha256", "precision")]
        candidates, pinned = data["candidates"], data["pinned_threads"]
        decision, budget = data.get("decision", {}), data.get("budget_s")
    except KeyError:
        return None
    valid = (
        machine is not None
        and all(isinstance(t, str) and t for t in texts)
        and Path(texts[0]).name == texts[0]  # a file's name, never a path
        and _valid_runtime(backend, hint, threads, spinning, pinned)
        and isinstance(candidates, Mapping)
        and bool(candidates)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in candidates.items())
        and isinstance(decision, Mapping)
        and (budget is None or isinstance(budget, (int, float)))
    )
    if not valid:
        return None
    return TunedChoice(
        candidates=dict(candidates),
        file=texts[0],
        file_sha256=texts[1],
        backend=backend,
        hint=hint,
        precision=texts[2],
        threads=threads,
        spinning=spinning,
        machine=machine,
        pinned_threads=pinned,
        decision=decision,
        probe=str(data.get("probe", "")),
        budget_s=budget,
        elapsed_s=float(data.get("elapsed_s", 0.0)) if isinstance(data.get("elapsed_s"), (int, float)) else 0.0,
    )


def _valid_runtime(backend: Any, hint: Any, threads: Any, spinning: Any, pinned: Any) -> bool:
    """A backend and hint this edgecnn runs, a whole thread count, a true/false spinning."""
    return (
        isinstance(backend, str)
        and isinstance(hint, (str, type(None)))
        and (backend, hint) in {("onnxruntime", None), *(("openvino", h) for h in OPENVINO_PRECISIONS)}
        and type(threads) is int
        and 1 <= threads <= 1024
        and type(spinning) is bool
        and (pinned is None or (type(pinned) is int and pinned >= 1))
    )
