"""Artifact names, atomic writes and the checks around them: a reader (or a crash) never sees a
half-written artifact, an unwritable output fails before any work, and a killed run's debris is removed
by the next run (temporary names carry the writer's pid, so only a dead writer's files are touched)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgecnn.errors import ConfigError, WriteError, describe

__all__ = [
    "CHECKPOINT_NAME",
    "known_sha256",
    "METRICS_NAME",
    "CURVES_NAME",
    "CONFUSION_NAME",
    "checkpoint_path",
    "report_path",
    "report_status",
    "check_writable",
    "atomic_path",
    "write_json",
    "work_dir",
    "file_sha256",
]

# What a training run writes into its --out folder.
CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.json"
CURVES_NAME = "curves.png"
CONFUSION_NAME = "confusion.png"

# `{prefix}{pid}-{random}{suffix}`: mkstemp/mkdtemp's random part is drawn from [a-z0-9_]
_OWNED = r"(\d+)-[a-z0-9_]+"
_WORK_DIR = re.compile(rf"edgecnn-[a-z]+-{_OWNED}")


def checkpoint_path(path: str | os.PathLike[str]) -> Path:
    """A run folder or a checkpoint file → the checkpoint file."""
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def report_path(model_path: str | os.PathLike[str]) -> Path:
    """``MODEL.onnx`` → ``MODEL.report.json``, the export's report card beside it."""
    path = Path(model_path)
    return path.with_name(path.stem + ".report.json")


def check_writable(path: str | os.PathLike[str], *, directory: bool = False, what: str = "output") -> Path:
    """Prove, before any work, that ``path`` (a file, or a folder with ``directory=True``) can be written:
    create its folder, write and remove a probe file there; raise :class:`ConfigError` naming ``what`` and
    ``path`` otherwise. Folders it made are removed again either way (the writers make them when they
    write), so neither a refused path nor a later failure of the command leaves anything behind."""
    target = Path(path)
    folder = target if directory else target.parent
    created: list[Path] = []
    step = f"cannot look at {target}"
    try:
        _refuse_wrong_kind(target, directory=directory, what=what)
        created = _missing_folders(folder, target, what)
        step = f"cannot create the folder {folder}"
        folder.mkdir(parents=True, exist_ok=True)
        step = f"cannot create files in {folder}"
        # the writer's own temp name for a file: a name too long for it fails here, not after the work
        fd, probe = tempfile.mkstemp(dir=folder, **({} if directory else _temp_name(target)))
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"{what} {target}: {step} ({exc.strerror or describe(exc)})") from exc
    finally:
        for made in created:  # deepest first, and only while still empty
            with contextlib.suppress(OSError):
                made.rmdir()
    return target


def _refuse_wrong_kind(target: Path, *, directory: bool, what: str) -> None:
    if os.path.islink(target) and not target.exists():
        raise ConfigError(f"{what} {target} is a dangling symlink (to {os.readlink(target)})")
    if directory and target.exists() and not target.is_dir():
        raise ConfigError(f"{what} {target} is a file, not a folder; give a folder path")
    if not directory and target.is_dir():
        raise ConfigError(f"{what} {target} is a folder; give a file path")
    if not directory and target.exists() and not target.is_file():  # a device or a pipe: a rename would replace it
        raise ConfigError(f"{what} {target} is not a regular file; give a file path")


def _missing_folders(folder: Path, target: Path, what: str) -> list[Path]:
    """The folders ``mkdir -p folder`` would create, deepest first; refuse a file or a dangling link on the way."""
    missing = []
    for level in (folder, *folder.parents):
        if level.exists():
            if not level.is_dir():
                raise ConfigError(f"{what} {target}: {level} is a file, not a folder")
            return missing
        if os.path.islink(level):
            raise ConfigError(f"{what} {target}: {level} is a dangling symlink (to {os.readlink(level)})")
        missing.append(level)
    return missing


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    The temporary file is ``.NAME.edgecnn-PID-RANDOM.tmp``: a run killed mid-write (SIGKILL runs no
    cleanup) leaves one behind, and the next write of the same target removes it once PID is gone. A write
    that fails (a full disk, a file or folder that refuses it) is a :class:`WriteError` naming ``path``; the
    file it would have replaced is untouched, and neither the temporary file nor a folder made for it stays."""
    target = Path(path)
    made = _absent_folders(target.parent)
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temp_files(target)
        fd, tmp = tempfile.mkstemp(dir=target.parent, **_temp_name(target))
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; artifacts get the usual permissions
        yield Path(tmp)
        os.replace(tmp, target)
        made = []
    except OSError as exc:
        if not _written_here(exc, target, tmp):  # a read of another file inside the block: not ours to name
            raise
        kept = "the previous file is kept" if target.exists() else "nothing was written"
        raise WriteError(f"cannot write {target}: {_why(exc)}; {kept}", path=target) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            if tmp is not None:
                os.unlink(tmp)
        for folder in made:  # deepest first, and only while still empty
            with contextlib.suppress(OSError):
                folder.rmdir()


def _absent_folders(folder: Path) -> list[Path]:
    """The folders ``mkdir -p folder`` would create, deepest first."""
    missing = []
    for level in (folder, *folder.parents):
        if os.path.lexists(level):
            break
        missing.append(level)
    return missing


def _written_here(exc: OSError, target: Path, tmp: str | None) -> bool:
    """Whether a failure is this write's: no file named (a write() or close() on the open file), or the
    temporary file, the target, or one of the target's folders named (shutil's copies name source and copy)."""
    if exc.filename is None:
        return True
    named = [os.fspath(name) for name in (exc.filename, exc.filename2) if name is not None]  # copies name both
    return any(name in (tmp, os.fspath(target)) or Path(name) in target.parents for name in named)


def _why(exc: OSError) -> str:
    why = exc.strerror or describe(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{why} (free some space, or write elsewhere)"
    return why


def _temp_name(target: Path) -> dict[str, str]:
    return {"prefix": f".{target.name}.edgecnn-{os.getpid()}-", "suffix": ".tmp"}


def _remove_stale_temp_files(target: Path) -> None:
    owned = re.compile(rf"\.{re.escape(target.name)}\.edgecnn-{_OWNED}\.tmp")
    for entry in os.scandir(target.parent):
        match = owned.fullmatch(entry.name)
        if match and not _alive(int(match.group(1))) and entry.is_file(follow_symlinks=False):
            # debris is removed on a best-effort basis: failing to tidy must not fail the write itself
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


@contextlib.contextmanager
def work_dir(job: str) -> Iterator[Path]:
    """A private temporary folder ``edgecnn-JOB-PID-RANDOM`` for one export or quantize run, removed on
    success, error and Ctrl-C; dead runs' folders (left by SIGKILL) are removed first. A file that cannot be
    written in it (the temp folder's disk is full) is a :class:`WriteError` naming the folder."""
    remove_stale_work_dirs()
    root = tempfile.gettempdir()
    try:
        tmp = tempfile.mkdtemp(prefix=f"edgecnn-{job}-{os.getpid()}-")
    except OSError as exc:
        raise WriteError(f"cannot create a temporary folder in {root}: {_why(exc)}", path=root) from exc
    try:
        yield Path(tmp)
    except OSError as exc:
        if exc.filename is not None and not os.fspath(exc.filename).startswith(tmp):
            raise
        where = f"point TMPDIR at a folder with room (now {root})"
        raise WriteError(f"cannot write temporary files in {tmp}: {_why(exc)}; {where}", path=tmp) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_work_dirs(root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove ``edgecnn-*-PID-*`` folders of dead processes from ``root`` (the temp folder); only ours,
    never a symlink; return what was removed."""
    removed = []
    for entry in os.scandir(root or tempfile.gettempdir()):
        match = _WORK_DIR.fullmatch(entry.name)
        if not match or not entry.is_dir(follow_symlinks=False) or _alive(int(match.group(1))):
            continue
        if entry.stat(follow_symlinks=False).st_uid == os.getuid():  # another user's folder is theirs to tidy
            shutil.rmtree(entry.path, ignore_errors=True)  # best effort, as for stale files
            removed.append(Path(entry.path))
    return removed


def _alive(pid: int) -> bool:
    """Whether ``pid`` may still be writing (a pid from another PID namespace looks alive or dead by chance:
    the names are only meant for writers on the same machine)."""
    if pid == os.getpid() or pid <= 0 or os.name != "posix":  # ours; <= 0 signals a group; Windows' kill kills
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes, hex, read in chunks (a model can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_KNOWN_SHA256: dict[tuple[str, int, int, int], str] = {}  # (path, inode, size, mtime_ns) → digest, this process


def known_sha256(path: str | os.PathLike[str]) -> str:
    """:func:`file_sha256`, remembered for this process while the file's inode, size and mtime stay the same:
    a zoo file is hashed once when resolved, and again never when the tuning cache looks it up."""
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    digest = _KNOWN_SHA256.get(key)
    if digest is None:
        digest = _KNOWN_SHA256[key] = file_sha256(path)
    return digest


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _umask() -> int:
    # Linux reports the mask; elsewhere it can only be read by setting it (restored at once)
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path("/proc/self/status").read_text().split("Umask:")[1].split()[0], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def report_status(model: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Whether MODEL.report.json beside the model describes THIS file (an export killed between the model's
    rename and its card's write leaves the previous export's card beside a new model); None: no card."""
    path = report_path(model)
    if not path.is_file():
        return None
    sha256 = file_sha256(model)
    try:
        recorded = json.loads(path.read_text(encoding="utf-8")).get("model_sha256")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):  # unreadable, or not a JSON object
        recorded = None
    return {
        "path": str(path),
        "model_sha256": sha256,
        "recorded_sha256": recorded,
        "matches": recorded == sha256 if isinstance(recorded, str) else None,
    }
