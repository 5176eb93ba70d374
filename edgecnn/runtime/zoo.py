"""The model zoo by name: ``zoo:NAME`` / ``zoo:NAME:fp32`` / ``zoo:NAME:int8`` → a checked file path.

Tier 0: the standard library only (onnxruntime is never imported here). Zoo folders are searched in this
order (:func:`zoo_dirs`): an explicit ``zoo_dir`` alone; else ``$EDGECNN_ZOO``, then the checkout's
``models/``, then the copy packaged in the wheel (``edgecnn/_zoo/``: the index, each net's int8 file and
its default file).
A file is returned only after its size and SHA-256 match the index (:mod:`edgecnn.runtime.zoo_index`), so
a damaged or tampered copy is refused before onnxruntime parses a byte of it.
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import edgecnn
from edgecnn.errors import ConfigError, ModelFileError, describe
from edgecnn.files import known_sha256
from edgecnn.runtime.zoo_index import INDEX_NAME, ZOO_FORMAT, ZOO_VARIANTS, ZooEntry, ZooIndex, load_index

__all__ = [
    "ZOO_PREFIX",
    "ZOO_VARIANTS",
    "ZOO_ENV",
    "ZOO_FORMAT",
    "ZooRow",
    "is_zoo_spec",
    "parse_zoo_spec",
    "zoo_dirs",
    "load_index",
    "resolve_zoo",
    "verify_file",
    "list_zoo",
    "zoo_variant_files",
]

ZOO_PREFIX = "zoo:"
ZOO_ENV = "EDGECNN_ZOO"
_SPEC_FORM = f"zoo:NAME or zoo:NAME:VARIANT ({' or '.join(ZOO_VARIANTS)})"
_WHEEL_HINT = (
    "the wheel ships only the int8 and the default models: pass --zoo-dir (zoo_dir=) or set EDGECNN_ZOO to "
    "a checkout's models/"
)
_REPAIR = "it is not loaded: restore it (reinstall edgecnn, or `git checkout models/`) or rebuild the zoo"


@dataclass(frozen=True)
class ZooRow:
    """One net as the zoo on this machine offers it (``edgecnn zoo``)."""

    name: str
    dataset: str
    summary: str
    default: str
    int8_mode: str | None
    test_accuracy: Mapping[str, float]
    sizes: Mapping[str, int]  # variant → bytes, as the index records them
    files: Mapping[str, Path | None]  # variant → the file resolve_zoo would check and return; None: not here
    index: Path  # the zoo folder whose index describes this net

    @property
    def available(self) -> tuple[str, ...]:
        return tuple(variant for variant, path in self.files.items() if path is not None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dataset": self.dataset,
            "summary": self.summary,
            "default": self.default,
            "int8_mode": self.int8_mode,
            "test_accuracy": dict(self.test_accuracy),
            "variants": {
                variant: {"size": self.sizes[variant], "path": None if path is None else str(path)}
                for variant, path in self.files.items()
            },
            "available": list(self.available),
            "index": str(self.index),
        }


def is_zoo_spec(text: Any) -> bool:
    """Whether ``text`` names a zoo model (``zoo:…``); a ``Path`` never does (use ``./zoo:x`` for such a file)."""
    return isinstance(text, str) and text.startswith(ZOO_PREFIX)


def parse_zoo_spec(spec: str) -> tuple[str, str | None]:
    """``zoo:NAME[:VARIANT]`` → (NAME, VARIANT or None); a malformed spec is a :class:`ConfigError`."""
    if not is_zoo_spec(spec):
        raise ConfigError(f"{spec!r} is not a zoo model: write {_SPEC_FORM}")
    name, colon, variant = spec[len(ZOO_PREFIX) :].partition(":")
    if not name:
        raise ConfigError(f"{spec!r} names no model: write {_SPEC_FORM} (`edgecnn zoo` lists them)")
    if colon and variant not in ZOO_VARIANTS:
        raise ConfigError(f"{spec!r}: unknown variant {variant!r}; the variants are {', '.join(ZOO_VARIANTS)}")
    return name, variant or None


def zoo_dirs(zoo_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The zoo folders to search, first first: ``zoo_dir`` alone when given; else ``$EDGECNN_ZOO`` (when set),
    then the checkout's ``models/`` and the wheel's ``edgecnn/_zoo/`` (each when it holds an index.json)."""
    if zoo_dir is not None:
        return [Path(zoo_dir)]
    found = [Path(os.environ[ZOO_ENV])] if os.environ.get(ZOO_ENV) else []
    for folder in (_checkout_zoo(), _wheel_zoo()):
        if (folder / INDEX_NAME).is_file() and all(folder.resolve() != seen.resolve() for seen in found):
            found.append(folder)
    return found


def _checkout_zoo() -> Path:
    return Path(edgecnn.__file__).resolve().parents[1] / "models"


def _wheel_zoo() -> Path:
    return Path(str(importlib.resources.files("edgecnn") / "_zoo"))


def _indexes(zoo_dir: str | os.PathLike[str] | None) -> list[ZooIndex]:
    folders = zoo_dirs(zoo_dir)
    if not folders:
        raise ModelFileError(
            f"no model zoo found: $EDGECNN_ZOO is not set, and neither the checkout ({_checkout_zoo()}) nor "
            "this edgecnn install holds one; pass --zoo-dir (zoo_dir=) or set EDGECNN_ZOO to a zoo folder"
        )
    return [load_index(folder) for folder in folders]


def resolve_zoo(spec: str, zoo_dir: str | os.PathLike[str] | None = None) -> Path:
    """``zoo:NAME[:VARIANT]`` → the path of that file, once its size and SHA-256 match the index.

    No variant: the net's ``default``. The first zoo folder whose index lists NAME and that holds the file
    wins. Unknown names and variants are :class:`ConfigError` (listing the valid ones); a listed file that
    no folder holds, or one that fails its checks, is a :class:`ModelFileError`."""
    name, variant = parse_zoo_spec(spec)
    indexes = _indexes(zoo_dir)
    listing = [index for index in indexes if name in index.nets]
    if not listing:
        known = sorted({net for index in indexes for net in index.nets})
        raise ConfigError(
            f"unknown zoo model {name!r}; "
            + (f"known: {', '.join(known)}" if known else "the zoo lists none")
            + f" (searched {', '.join(str(index.folder) for index in indexes)})"
        )
    variant = variant or listing[0].nets[name].default
    for index in listing:
        relative = index.nets[name].variants.get(variant)
        if relative is not None and index.path_of(relative).is_file():
            return verify_file(index, relative)
    offered = [index.nets[name].variants for index in listing]
    if not any(variant in variants for variants in offered):
        raise ConfigError(f"zoo model {name!r} has no {variant} variant; it has {', '.join(offered[0])}")
    expected = next(
        index.path_of(net.variants[variant]) for index, net in _nets(listing, name) if variant in net.variants
    )
    hint = _WHEEL_HINT if variant != "int8" else "restore the file or rebuild the zoo"
    raise ModelFileError(
        f"zoo:{name}:{variant} is in the zoo index but its file is not in any folder searched "
        f"({', '.join(str(index.folder) for index in listing)}); {hint}",
        path=expected,
    )


def _nets(listing: list[ZooIndex], name: str) -> list[tuple[ZooIndex, ZooEntry]]:
    return [(index, index.nets[name]) for index in listing]


def verify_file(index: ZooIndex, relative: str) -> Path:
    """``index.path_of(relative)`` once its size and SHA-256 (read in 1 MiB chunks) match the index."""
    path, expected = index.path_of(relative), index.files[relative]
    try:
        size = path.stat().st_size
        digest = known_sha256(path) if size == expected.size else None
    except OSError as exc:
        raise ModelFileError(f"cannot read the zoo file {path}: {describe(exc)}", path=path) from exc
    if digest is None:
        raise ModelFileError(
            f"{path} fails its size check (expected {expected.size:,} bytes, got {size:,}): "
            f"a damaged or tampered copy; {_REPAIR}",
            path=path,
        )
    if digest != expected.sha256:
        raise ModelFileError(
            f"{path} fails its SHA-256 check (expected {expected.sha256}, got {digest}): "
            f"a damaged or tampered copy; {_REPAIR}",
            path=path,
        )
    return path


def list_zoo(zoo_dir: str | os.PathLike[str] | None = None) -> list[ZooRow]:
    """Every net the zoo folders list (the first folder listing a name describes it), sorted by name, with
    the variants present here. Files are not hashed: that happens when one is resolved."""
    indexes = _indexes(zoo_dir)
    names = sorted({name for index in indexes for name in index.nets})
    return [_row(name, [index for index in indexes if name in index.nets]) for name in names]


def _row(name: str, listing: list[ZooIndex]) -> ZooRow:
    entry, files = listing[0].nets[name], {}
    for variant in entry.variants:
        present = (
            index.path_of(net.variants[variant]) for index, net in _nets(listing, name) if variant in net.variants
        )
        files[variant] = next((path for path in present if path.is_file()), None)
    return ZooRow(
        name=name,
        dataset=entry.dataset,
        summary=entry.summary,
        default=entry.default,
        int8_mode=entry.int8_mode,
        test_accuracy=dict(entry.test_accuracy),
        sizes={variant: listing[0].files[relative].size for variant, relative in entry.variants.items()},
        files=files,
        index=listing[0].folder,
    )


def zoo_variant_files(spec: str, zoo_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Every variant of the zoo net ``spec`` names that is here and passes its checks, keyed by quantization
    mode ("none" for fp32; the int8 file's mode): what ``edgecnn tune zoo:NAME`` chooses among. A variant the
    folders lack (the wheel ships the int8 and the default file) is left out; a damaged one is refused."""
    name, _ = parse_zoo_spec(spec)
    files = {}
    for row in list_zoo(zoo_dir):
        if row.name == name:
            for variant in row.available:
                mode = "none" if variant == "fp32" else row.int8_mode or "static"
                files[mode] = resolve_zoo(f"{ZOO_PREFIX}{name}:{variant}", zoo_dir)
    return files
