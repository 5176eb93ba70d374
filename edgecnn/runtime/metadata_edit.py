"""Rewriting one ``edgecnn.*`` metadata entry of an .onnx file in tier 0 (no ``onnx`` package): what
``edgecnn check --record`` writes.

A ModelProto is a sequence of top-level fields; ``metadata_props`` is field 14, each entry a
``StringStringEntryProto`` (key=1, value=2). The rewrite copies every other top-level field byte for byte,
drops the entries whose key is being set, and appends the new ones, so the graph and weights are untouched.
The result goes through a temporary file, is opened by onnxruntime and its metadata decoded, and only then
replaces the file (:func:`~edgecnn.files.atomic_path`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgecnn.errors import ModelFileError
from edgecnn.files import atomic_path
from edgecnn.runtime.metadata import PREFIX, ModelMetadata, read_metadata
from edgecnn.runtime.session import open_session

__all__ = ["replace_entries", "record_targets"]

_METADATA_FIELD = 14
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def replace_entries(data: bytes, entries: Mapping[str, str]) -> bytes:
    """``data`` (a serialized ModelProto) with ``entries`` as its metadata values for those keys."""
    out = bytearray()
    pos = 0
    while pos < len(data):
        start = pos
        tag, pos = _varint(data, pos)
        field, wire = tag >> 3, tag & 7
        payload = None
        if wire == _VARINT:
            _, pos = _varint(data, pos)
        elif wire in (_I64, _I32):
            pos += 8 if wire == _I64 else 4
        elif wire == _LEN:
            length, pos = _varint(data, pos)
            payload, pos = data[pos : pos + length], pos + length
        else:
            raise ModelFileError(f"not an ONNX model: wire type {wire} at byte {start}")
        if pos > len(data):
            raise ModelFileError("not an ONNX model: a field runs past the end of the file")
        if field == _METADATA_FIELD and payload is not None and _entry_key(payload) in entries:
            continue
        out += data[start:pos]
    for key, value in entries.items():
        out += _field(_METADATA_FIELD, _field(1, key.encode()) + _field(2, value.encode()))
    return bytes(out)


def record_targets(path: Path, records: Mapping[str, Mapping[str, Any]]) -> ModelMetadata:
    """Merge ``records`` (target → what was found) into the file's ``edgecnn.targets``, atomically."""
    meta = read_metadata(open_session(path), source=str(path))
    merged = {**meta.targets, **records}
    value = json.dumps(merged, sort_keys=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(replace_entries(path.read_bytes(), {PREFIX + "targets": value}))
        written = read_metadata(open_session(tmp), source=str(path))  # onnxruntime reads it back, whole
        if dict(written.targets) != merged:
            raise ModelFileError(f"{path}: the recorded targets did not read back")
    return written


def _entry_key(payload: bytes) -> str | None:
    pos = 0
    while pos < len(payload):
        tag, pos = _varint(payload, pos)
        if tag & 7 != _LEN:
            return None
        length, pos = _varint(payload, pos)
        if tag >> 3 == 1:
            return payload[pos : pos + length].decode("utf-8", "replace")
        pos += length
    return None


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ModelFileError("not an ONNX model: a truncated or overlong varint")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


def _field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | _LEN) + _encode_varint(len(payload)) + payload


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
