"""``backend="auto"``: the fastest correct configuration on this machine, and where that decision came from.

In this order:
1. the tuning cache's entry for these files on this machine (:mod:`edgecnn.runtime.tune_cache`);
2. the choice ``auto`` recorded in the file at export, when it was measured on a machine with this very
   fingerprint (:mod:`edgecnn.runtime.fingerprint`): used as it is;
3. otherwise a tuning now (:mod:`edgecnn.runtime.tuning`, within :data:`~edgecnn.runtime.tuning.PREDICTOR_BUDGET`),
   cached for the next start — unless tuning is off (``tune=False``, or ``EDGECNN_TUNE=0`` for a process that
   must start in 100 ms): then the recorded choice as it is, or onnxruntime for a file without one.

On CUDA it is onnxruntime on CUDA: tuning measures CPUs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.config import BATCH_SIZE_HINT
from edgecnn.errors import EdgeCNNError
from edgecnn.files import known_sha256
from edgecnn.runtime.backends import recorded_backend
from edgecnn.runtime.fingerprint import read_fingerprint, this_machine
from edgecnn.runtime.metadata import ModelMetadata
from edgecnn.runtime.tune_cache import TunedChoice, entry_path, read_entry, write_entry
from edgecnn.runtime.tuning import PREDICTOR_BUDGET, Tuning, tune
from edgecnn.runtime.zoo import is_zoo_spec, parse_zoo_spec, zoo_variant_files

__all__ = [
    "TUNE_ENV",
    "AutoChoice",
    "tuning_enabled",
    "auto_files",
    "settled_choice",
    "choose_auto",
    "cached_choice",
    "to_cache",
]

TUNE_ENV = "EDGECNN_TUNE"  # "0" (or false/no/off): a Predictor never tunes; `edgecnn tune` still does
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AutoChoice:
    """What ``backend="auto"`` runs, and why."""

    path: Path  # the file: the one asked for, or its variant the tuning chose
    backend: str
    hint: str | None  # OpenVINO's precision hint
    threads: int | None  # None: the thread policy's
    spinning: bool | None
    origin: str  # one phrase: where the decision came from
    cache: Path | None = None  # the cache entry read or written
    tuning: Tuning | None = None  # the tuning made now, if one was


def tuning_enabled(tune: bool | None = None) -> bool:
    """``tune`` when given; else unless ``$EDGECNN_TUNE`` says 0, false, no or off."""
    if tune is not None:
        return tune
    return os.environ.get(TUNE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def cached_choice(
    files: Mapping[str, Path], pinned_threads: int | None = None
) -> tuple[TunedChoice, Path, Path] | None:
    """The cache entry for ``files`` on this machine, the file it chose, and the entry's path; None without one."""
    candidates = {mode: known_sha256(path) for mode, path in files.items()}
    entry = read_entry(candidates, this_machine(), pinned_threads)
    if entry is None:
        return None
    chosen = next(files[mode] for mode, digest in candidates.items() if digest == entry.file_sha256)
    return entry, chosen, entry_path(candidates, this_machine(), pinned_threads)


def auto_files(asked: Any, zoo_dir: Any = None, *, path: Path, primary: str) -> dict[str, Path]:
    """The files ``backend="auto"`` chooses among for the model ``asked`` (resolved to ``path``, whose mode is
    ``primary``): a zoo net named without a variant offers every variant here; anything else, its one file."""
    if is_zoo_spec(asked) and parse_zoo_spec(asked)[1] is None:
        return {**zoo_variant_files(asked, zoo_dir), primary: path}
    return {primary: path}


def settled_choice(
    files: Mapping[str, Path], primary: str, metadata: ModelMetadata, provider: str, pinned_threads: int | None = None
) -> AutoChoice | None:
    """The decision already made for this machine — CUDA's, the cache's, or auto's recorded with this very
    fingerprint — or None when only a tuning can decide (what ``edgecnn info`` shows, without tuning)."""
    path, quantization = files[primary], metadata.quantization
    if provider == "cuda":
        return AutoChoice(path, "onnxruntime", None, None, None, "onnxruntime on CUDA (tuning measures CPUs)")
    cached = cached_choice(files, pinned_threads)
    if cached is not None:
        entry, chosen, where = cached
        origin = f"tuned on this machine: {entry.summary()} (cache {where})"
        return AutoChoice(chosen, entry.backend, entry.hint, entry.threads, entry.spinning, origin, where)
    auto = quantization.get("auto")
    recorded = read_fingerprint(auto.get("machine")) if isinstance(auto, Mapping) else None
    if recorded is not None and recorded == this_machine():
        backend, hint = recorded_backend(path, quantization, provider)
        return AutoChoice(path, backend, hint, None, None, f"recorded by auto at export on this machine: {backend}")
    return None


def choose_auto(
    files: Mapping[str, Path],
    primary: str,
    metadata: ModelMetadata,
    provider: str,
    *,
    tune_now: bool | None = None,
    threads: int | None = None,
) -> AutoChoice:
    """What runs ``files[primary]`` (``files``: it and the variants it may be swapped for) under backend "auto";
    ``threads``: pinned by the caller (the tuning runs every configuration with them, and is cached apart)."""
    pinned_threads = threads
    settled = settled_choice(files, primary, metadata, provider, pinned_threads)
    if settled is not None:
        return settled
    path, quantization = files[primary], metadata.quantization
    if not tuning_enabled(tune_now):
        backend, hint = recorded_backend(path, quantization, provider)
        why = "tune=False" if tune_now is False else f"{TUNE_ENV}={os.environ.get(TUNE_ENV)}"
        recorded = isinstance(quantization.get("auto"), Mapping)
        what = "recorded by auto on another machine" if recorded else "no choice recorded"
        return AutoChoice(path, backend, hint, None, None, f"{what}, used as is: {backend}; not tuned here ({why})")
    try:
        tuning = tune(
            files,
            primary,
            batch_size_hint=BATCH_SIZE_HINT,
            budget=PREDICTOR_BUDGET,
            threads=pinned_threads,
            metadata=metadata,
        )
    except EdgeCNNError as exc:  # the file still runs as it is: say why it was not tuned, and run it
        backend, hint = recorded_backend(path, quantization, provider)
        return AutoChoice(path, backend, hint, None, None, f"not tuned here ({exc}): {backend}, as recorded")
    written, why_not = to_cache(tuning, pinned_threads)
    row = tuning.decision.row
    origin = f"tuned now on this machine in {tuning.elapsed_s:.2f} s: {row.candidate}; " + (
        f"cached in {written}" if written else why_not
    )
    return AutoChoice(tuning.path, row.backend, row.hint, row.threads, row.spinning, origin, written, tuning)


def to_cache(tuning: Tuning, pinned_threads: int | None = None) -> tuple[Path | None, str]:
    """Write ``tuning``'s decision to the cache: (the entry's path, "") or (None, why it was not)."""
    row, chosen = tuning.decision.row, tuning.path
    entry = TunedChoice(
        candidates={mode: known_sha256(path) for mode, path in tuning.files.items()},
        file=chosen.name,
        file_sha256=known_sha256(chosen),
        backend=row.backend,
        hint=row.hint,
        precision=row.precision,
        threads=int(row.threads or 1),
        spinning=bool(row.spinning),
        machine=this_machine(),
        pinned_threads=pinned_threads,
        decision=tuning.decision.to_dict(),
        probe=tuning.probe,
        budget_s=tuning.budget_s,
        elapsed_s=tuning.elapsed_s,
    )
    return write_entry(entry)
