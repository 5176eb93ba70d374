"""One packaging step pyproject.toml cannot say: ship the zoo's int8 (and default) models inside the wheel.

pyproject.toml stays the metadata. When ``models/index.json`` exists, ``build_py`` copies it unchanged into
``edgecnn/_zoo/``, with each net's int8 file and its default file (``auto``'s choice: fp32 where int8 is not
faster) beside it in the same layout, so the packaged index's SHA-256s
still verify (``edgecnn.runtime.zoo`` finds that copy after ``$EDGECNN_ZOO`` and a checkout's ``models/``).
The fp32 files and the rest of each net's folder stay in the repository. Without ``models/`` the build is
the same and ships no zoo. MANIFEST.in carries the same files in an sdist, so its wheel ships them too.

Standalone on purpose (the build must not import the package it builds): the few checks here mirror
``edgecnn/runtime/zoo_index.py``, which is the schema.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ZOO_SOURCE = Path(__file__).resolve().parent / "models"
ZOO_FORMAT = "edgecnn-zoo-1"


def shipped_files(index: dict) -> list[str]:
    """The int8 and the default file of every net of a parsed index, as relative paths (refused if one could
    escape)."""
    if index.get("format") != ZOO_FORMAT:
        raise RuntimeError(f"models/index.json has format {index.get('format')!r}, not {ZOO_FORMAT!r}")
    files = []
    for net in index["nets"].values():
        for variant in ("int8", net["default"]):
            if variant in net["variants"] and net["variants"][variant] not in files:
                files.append(net["variants"][variant])
    for relative in files:
        parts = relative.split("/")
        if "\\" in relative or ":" in relative or any(part in ("", ".", "..") for part in parts):
            raise RuntimeError(f"models/index.json: {relative!r} is not a plain relative path")
    return files


def copy_zoo(source: Path, target: Path) -> int:
    """``source/index.json`` and its int8 and default files → ``target``, each checked against the index first.
    Returns how many models were copied (0 when ``source`` holds no index)."""
    shutil.rmtree(target, ignore_errors=True)  # a file left by an earlier build must never ship
    if not (source / "index.json").is_file():
        return 0
    index = json.loads((source / "index.json").read_text(encoding="utf-8"))
    files = shipped_files(index)
    for relative in files:
        data = (source / relative).read_bytes()
        expected = index["files"][relative]
        if len(data) != expected["size"] or hashlib.sha256(data).hexdigest() != expected["sha256"]:
            raise RuntimeError(f"models/{relative} does not match models/index.json: rebuild the zoo first")
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        (target / relative).write_bytes(data)
    shutil.copyfile(source / "index.json", target / "index.json")
    return len(files)


class BuildWithZoo(build_py):
    """build_py, plus the zoo's index, int8 and default models as ``edgecnn/_zoo/`` (not in editable installs:
    those read the checkout's ``models/`` directly)."""

    def run(self) -> None:
        super().run()
        if not getattr(self, "editable_mode", False):
            count = copy_zoo(ZOO_SOURCE, Path(self.build_lib) / "edgecnn" / "_zoo")
            self.announce(f"packaged {count} zoo model file(s) into edgecnn/_zoo", level=2)


setup(cmdclass={"build_py": BuildWithZoo})
