"""The model zoo's ``index.json``: the one schema, read strictly. Tier 0: the standard library only.

::

    {"format": "edgecnn-zoo-1",
     "nets": {NAME: {"dataset": "fashion-mnist", "summary": "one line",
                     "default": "int8",                                  (one of its variants)
                     "variants": {"fp32": "NAME/NAME.fp32.onnx", "int8": "NAME/NAME.int8.onnx"},
                     "int8_mode": "static",                              (optional: str or null)
                     "test_accuracy": {"torch": 0.92, "fp32": 0.92, "int8": 0.919}}},   (optional)
     "files": {"NAME/NAME.fp32.onnx": {"sha256": "<64 hex>", "size": 123456}, ...}}

Paths are relative to the folder that holds ``index.json`` and use forward slashes. An absolute path, a
``..`` (or ``.`` or empty) component, a backslash, a drive colon or a control character is refused: a
hostile index cannot make edgecnn read outside its folder. Every variant's file is listed in "files", which
also lists the rest of a net's folder (card, weights, plots, report) so a copy can be checked whole. Keys
this schema does not name are refused, not ignored: a file another format wrote fails loudly.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.errors import ModelFileError, describe
from edgecnn.files import file_sha256

__all__ = ["ZOO_FORMAT", "ZOO_VARIANTS", "INDEX_NAME", "ZooFile", "ZooEntry", "ZooIndex", "load_index", "build_index"]

ZOO_FORMAT = "edgecnn-zoo-1"
ZOO_VARIANTS = ("fp32", "int8")
INDEX_NAME = "index.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")  # no ":" (zoo:NAME:VARIANT) and no "/"
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_REQUIRED = ("dataset", "summary", "default", "variants")
_OPTIONAL = ("int8_mode", "test_accuracy")


class _Invalid(ValueError):
    """One problem in an index; load_index turns it into a ModelFileError naming the file."""


@dataclass(frozen=True)
class ZooFile:
    """A file the index vouches for: its SHA-256 (lowercase hex) and its size in bytes."""

    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size}


@dataclass(frozen=True)
class ZooEntry:
    """One net of the zoo; ``variants`` maps "fp32"/"int8" to a path relative to the zoo folder."""

    name: str
    dataset: str
    summary: str
    default: str
    variants: Mapping[str, str]
    int8_mode: str | None = None  # the quantization mode of the int8 file ("static", "dynamic", …)
    test_accuracy: Mapping[str, float] = field(default_factory=dict)  # "torch"/"fp32"/"int8" → top-1

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "dataset": self.dataset,
            "summary": self.summary,
            "default": self.default,
            "variants": dict(self.variants),
        }
        if self.int8_mode is not None:
            data["int8_mode"] = self.int8_mode
        if self.test_accuracy:
            data["test_accuracy"] = dict(self.test_accuracy)
        return data


@dataclass(frozen=True)
class ZooIndex:
    """A validated index and the folder it describes."""

    folder: Path
    nets: Mapping[str, ZooEntry]
    files: Mapping[str, ZooFile]

    def path_of(self, relative: str) -> Path:
        """A path of the index (already checked to stay inside the folder) → the file on disk."""
        return self.folder.joinpath(*relative.split("/"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": ZOO_FORMAT,
            "nets": {name: entry.to_dict() for name, entry in self.nets.items()},
            "files": {path: entry.to_dict() for path, entry in self.files.items()},
        }


def load_index(folder: str | os.PathLike[str]) -> ZooIndex:
    """Read and validate ``folder/index.json``; any problem is a :class:`ModelFileError` naming the file."""
    folder = Path(folder)
    path = folder / INDEX_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelFileError(f"{folder} is not a model zoo: it holds no {INDEX_NAME}", path=path) from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(f"cannot read the zoo index {path}: {describe(exc)}", path=path) from exc
    try:
        return _parse_index(data, folder)
    except _Invalid as exc:
        raise ModelFileError(f"zoo index {path} is invalid: {exc}", path=path) from exc


def _parse_index(data: Any, folder: Path) -> ZooIndex:
    if not isinstance(data, dict):
        raise _Invalid("its top level is not a JSON object")
    if data.get("format") != ZOO_FORMAT:
        raise _Invalid(
            f"format {data.get('format')!r} is not {ZOO_FORMAT!r}, the one this edgecnn reads "
            "(a newer edgecnn may have written it: upgrade edgecnn)"
        )
    _refuse_unknown(data, ("format", "nets", "files"), "the index")
    files = {path: _file(path, value) for path, value in _mapping(data.get("files"), '"files"').items()}
    nets = {name: _entry(name, value, files) for name, value in _mapping(data.get("nets"), '"nets"').items()}
    return ZooIndex(folder, nets, files)


def build_index(folder: str | os.PathLike[str], nets: Sequence[ZooEntry], extra_files: Iterable[str] = ()) -> ZooIndex:
    """The index of ``folder`` for ``nets``: every variant file and each of ``extra_files`` (paths relative
    to ``folder``) hashed from disk. Write it with ``edgecnn.files.write_json(folder / INDEX_NAME,
    index.to_dict())``; it is validated here exactly as load_index will read it (a ModelFileError if not)."""
    folder = Path(folder)
    paths = [path for entry in nets for path in entry.variants.values()] + list(extra_files)
    try:
        files = {}
        for relative in dict.fromkeys(paths):  # in order, once each
            _check_relative(relative)
            on_disk = folder.joinpath(*relative.split("/"))
            files[relative] = {"sha256": file_sha256(on_disk), "size": on_disk.stat().st_size}
        draft = {"format": ZOO_FORMAT, "nets": {entry.name: entry.to_dict() for entry in nets}, "files": files}
        if len(draft["nets"]) != len(nets):
            raise _Invalid("two nets share a name")
        return _parse_index(json.loads(json.dumps(draft)), folder)  # the JSON round trip load_index will see
    except (_Invalid, OSError) as exc:
        raise ModelFileError(f"cannot index the zoo {folder}: {describe(exc)}", path=folder) from exc


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(f"{what} must be a JSON object (got {type(value).__name__})")
    return value


def _refuse_unknown(data: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise _Invalid(f"{where} has unknown keys {', '.join(map(repr, unknown))} (known: {', '.join(known)})")


def _check_relative(path: Any) -> None:
    """A plain relative path with forward slashes whose every component is a real name."""
    if not isinstance(path, str):
        raise _Invalid(f"file path {path!r} is not a string")
    parts = path.split("/")
    if (
        "\\" in path
        or ":" in path
        or any(ord(char) < 32 for char in path)
        or any(part in ("", ".", "..") for part in parts)  # also catches "" and a leading "/"
    ):
        raise _Invalid(
            f"file path {path!r} is not a relative path with forward slashes (no absolute path, '..', '.', "
            "backslash or drive): it could point outside the zoo folder"
        )


def _file(path: str, value: Any) -> ZooFile:
    _check_relative(path)
    value = _mapping(value, f'the entry of {path!r} in "files"')
    _refuse_unknown(value, ("sha256", "size"), f"the entry of {path!r}")
    sha256, size = value.get("sha256"), value.get("size")
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise _Invalid(f"{path!r}: sha256 must be 64 lowercase hex digits (got {sha256!r})")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _Invalid(f"{path!r}: size must be a whole number of bytes (got {size!r})")
    return ZooFile(sha256, size)


def _entry(name: str, value: Any, files: Mapping[str, ZooFile]) -> ZooEntry:
    if not _NAME.match(name):
        raise _Invalid(f"net name {name!r} must be letters, digits, '_', '.' or '-' (and no ':')")
    value = _mapping(value, f"net {name!r}")
    _refuse_unknown(value, _REQUIRED + _OPTIONAL, f"net {name!r}")
    missing = [key for key in _REQUIRED if key not in value]
    if missing:
        raise _Invalid(f"net {name!r} lacks {', '.join(missing)}")
    for key in ("dataset", "summary"):
        if not isinstance(value[key], str):
            raise _Invalid(f"net {name!r}: {key} must be a string")
    if value.get("int8_mode") is not None and not isinstance(value["int8_mode"], str):
        raise _Invalid(f"net {name!r}: int8_mode must be a string or null")
    variants = _variants(name, value["variants"], files)
    if value["default"] not in variants:
        raise _Invalid(f"net {name!r}: default {value['default']!r} is not one of its variants ({', '.join(variants)})")
    return ZooEntry(
        name=name,
        dataset=value["dataset"],
        summary=value["summary"],
        default=value["default"],
        variants=variants,
        int8_mode=value.get("int8_mode"),
        test_accuracy=_accuracy(name, value.get("test_accuracy", {})),
    )


def _variants(name: str, value: Any, files: Mapping[str, ZooFile]) -> dict[str, str]:
    variants = _mapping(value, f"net {name!r}: variants")
    if not variants:
        raise _Invalid(f"net {name!r} has no variants")
    for variant, path in variants.items():
        if variant not in ZOO_VARIANTS:
            raise _Invalid(f"net {name!r}: variant {variant!r} is not one of {', '.join(ZOO_VARIANTS)}")
        if path not in files:
            raise _Invalid(f'net {name!r}: the {variant} file {path!r} is not listed in "files"')
    return dict(variants)


def _accuracy(name: str, value: Any) -> dict[str, float]:
    for key, figure in _mapping(value, f"net {name!r}: test_accuracy").items():
        if not isinstance(figure, (int, float)) or isinstance(figure, bool) or not (math.isfinite(figure)):
            raise _Invalid(f"net {name!r}: test_accuracy {key!r} must be a number (got {figure!r})")
        if not 0 <= figure <= 1:
            raise _Invalid(f"net {name!r}: test_accuracy {key!r} must be a fraction from 0 to 1 (got {figure!r})")
    return dict(value)
