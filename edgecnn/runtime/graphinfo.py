"""What an .onnx file declares — IR version, producer, opsets, inputs, outputs, op counts, metadata — for any file.

Tier 0 cannot import the ``onnx`` package (nor ``google.protobuf``), and onnxruntime exposes neither the
opset imports nor the nodes, so ``edgecnn info`` and ``edgecnn bench`` read them here with a small
protobuf wire-format reader over the file's bytes. It knows only the fields below (numbers from
onnx.proto) and skips everything else by its length; initializers are never decoded, only their name is
picked out so that old-style graph inputs that are initializers are not reported as model inputs.

::

    ModelProto          ir_version=1 producer_name=2 producer_version=3 graph=7 opset_import=8 metadata_props=14
    OperatorSetIdProto  domain=1 version=2                StringStringEntryProto  key=1 value=2
    GraphProto          node=1 initializer=5 input=11 output=12 sparse_initializer=15
    NodeProto           op_type=4 domain=7                ValueInfoProto          name=1 type=2
    TypeProto           tensor_type=1 sequence_type=4 map_type=5 opaque_type=7 sparse_tensor_type=8 optional_type=9
    TypeProto.Tensor    elem_type=1 shape=2               TensorShapeProto        dim=1
    Dimension           dim_value=1 dim_param=2           TensorProto             name=8

Hostile bytes cannot hang it or make it allocate: every length is checked against the bytes left, the
nesting depth is fixed by the code (no recursion), and the file is memory-mapped, not copied.
Op counts are of the main graph's nodes (not of subgraphs inside If/Loop, nor of model-local functions).
"""

from __future__ import annotations

import mmap
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from edgecnn.errors import ModelFileError, describe

__all__ = ["TensorInfo", "GraphInfo", "read_graph_info"]

Buffer = bytes | mmap.mmap
Span = tuple[int, int]  # [start, end) of a length-delimited field's payload in the buffer
Dim = int | str | None

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_WIRE_NAMES = {_VARINT: "varint", _I64: "fixed64", _LEN: "length-delimited", _I32: "fixed32"}

# Field number → wire type of the fields read, per message; a known field with another wire type is corrupt.
_MODEL = {1: _VARINT, 2: _LEN, 3: _LEN, 7: _LEN, 8: _LEN, 14: _LEN}
_OPSET = {1: _LEN, 2: _VARINT}
_ENTRY = {1: _LEN, 2: _LEN}
_GRAPH = {1: _LEN, 5: _LEN, 11: _LEN, 12: _LEN, 15: _LEN}
_NODE = {4: _LEN, 7: _LEN}
_TENSOR = {8: _LEN}
_SPARSE = {1: _LEN}
_VALUE_INFO = {1: _LEN, 2: _LEN}
_TYPE = {1: _LEN, 4: _LEN, 5: _LEN, 7: _LEN, 8: _LEN, 9: _LEN}
_TENSOR_TYPE = {1: _VARINT, 2: _LEN}
_SHAPE = {1: _LEN}
_DIM = {1: _VARINT, 2: _LEN}

_TYPE_KINDS = {4: "sequence", 5: "map", 7: "opaque", 9: "optional"}  # non-tensor TypeProto cases
_DEFAULT_DOMAINS = ("", "ai.onnx")

# TensorProto.DataType, in number order from 0.
_DTYPE_NAMES = (
    "undefined float uint8 int8 uint16 int16 int32 int64 string bool float16 double uint32 uint64 complex64 "
    "complex128 bfloat16 float8e4m3fn float8e4m3fnuz float8e5m2 float8e5m2fnuz uint4 int4 float4e2m1 "
    "float8e8m0 uint2 int2 float6e2m3 float6e3m2"
)
_DTYPES = dict(enumerate(_DTYPE_NAMES.split()))


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output: symbolic dims are their names ("batch"), unnamed unknown dims are None."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...]  # () for a scalar, and where the file declares no shape

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class GraphInfo:
    """What one .onnx file declares about itself, read without the onnx package."""

    ir_version: int
    producer: str  # "pytorch 2.9.0": producer_name and producer_version
    opsets: dict[str, int]  # domain → version; the default domain "" is named "ai.onnx"
    inputs: tuple[TensorInfo, ...]  # initializers listed as graph inputs (old exports) left out
    outputs: tuple[TensorInfo, ...]
    op_counts: dict[str, int]  # sorted by op; ops of other domains are "domain.op_type"
    metadata: dict[str, str]  # metadata_props

    def to_dict(self) -> dict[str, Any]:
        return {
            "ir_version": self.ir_version,
            "producer": self.producer,
            "opsets": dict(self.opsets),
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "op_counts": dict(self.op_counts),
            "metadata": dict(self.metadata),
        }


class _Corrupt(ValueError):
    """The bytes are not a ModelProto; read_graph_info adds the path and raises ModelFileError."""


def read_graph_info(path: str | os.PathLike[str]) -> GraphInfo:
    """Describe the ONNX model at ``path``; ModelFileError if it is missing, empty or not a ModelProto."""
    try:
        with open(path, "rb") as file:
            if os.fstat(file.fileno()).st_size == 0:
                raise ModelFileError(f"model file {os.fspath(path)} is empty", path=path)
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _model(data)
    except _Corrupt as exc:
        raise ModelFileError(f"{os.fspath(path)} is not a valid ONNX model: {exc}", path=path) from exc
    except FileNotFoundError as exc:
        raise ModelFileError(f"model file {os.fspath(path)} not found", path=path) from exc
    except (OSError, ValueError) as exc:  # ValueError: mmap refuses some special files
        raise ModelFileError(f"cannot read model file {os.fspath(path)}: {describe(exc)}", path=path) from exc


def _varint(data: Buffer, pos: int, end: int) -> tuple[int, int]:
    """The unsigned varint at ``pos`` and the position after it."""
    if pos < end and data[pos] < 0x80:  # keys, lengths and small ints: most varints are one byte
        return data[pos], pos + 1
    result = shift = 0
    for i in range(pos, min(end, pos + 10)):  # 10 bytes hold 64 bits; more is corrupt, not a bigger number
        byte = data[i]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & 0xFFFF_FFFF_FFFF_FFFF, i + 1
        shift += 7
    raise _Corrupt(f"truncated varint at byte {pos}" if end - pos < 10 else f"varint longer than 10 bytes at {pos}")


def _signed(value: int) -> int:
    """int64 fields travel as two's complement in 64 bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _fields(data: Buffer, span: Span) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of each field in ``span``: an int for varints, a Span for
    length-delimited fields (not copied), None for fixed-width ones (nothing read needs them)."""
    pos, end = span
    while pos < end:
        key, pos = _varint(data, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Corrupt(f"field number 0 at byte {pos}")
        value: Any = None
        if wire == _VARINT:
            value, pos = _varint(data, pos, end)
        elif wire in (_I64, _I32):
            pos += 8 if wire == _I64 else 4
            if pos > end:
                raise _Corrupt(f"fixed-width field {number} runs past the end")
        elif wire == _LEN:
            length, pos = _varint(data, pos, end)
            if length > end - pos:
                raise _Corrupt(f"field {number} claims {length} bytes, only {end - pos} left at byte {pos}")
            value, pos = (pos, pos + length), pos + length
        else:  # groups (3, 4) are not used by onnx.proto; 6 and 7 do not exist
            raise _Corrupt(f"wire type {wire} (field {number}) at byte {pos}")
        yield number, wire, value


def _message(data: Buffer, span: Span, schema: dict[int, int], what: str) -> Iterator[tuple[int, Any]]:
    """The fields of ``span`` that ``schema`` names, wire types checked; all others are skipped."""
    for number, wire, value in _fields(data, span):
        expected = schema.get(number)
        if expected is None:
            continue
        if wire != expected:
            raise _Corrupt(f"{what} field {number} is {_WIRE_NAMES.get(wire)}, expected {_WIRE_NAMES[expected]}")
        yield number, value


def _last(data: Buffer, span: Span, schema: dict[int, int], what: str) -> dict[int, Any]:
    """Singular fields by number; the last occurrence wins (protobuf would merge a repeated sub-message,
    but no writer emits one twice, and the graph itself, where it could matter, is merged)."""
    return dict(_message(data, span, schema, what))


def _text(data: Buffer, span: Span | None) -> str:
    # Lenient on bad UTF-8: a garbled name is still worth showing, and onnxruntime decides loadability.
    return "" if span is None else data[span[0] : span[1]].decode("utf-8", errors="replace")


def _model(data: Buffer) -> GraphInfo:
    ir_version, names, opsets, metadata, graphs = 0, ["", ""], {}, {}, []
    for number, value in _message(data, (0, len(data)), _MODEL, "ModelProto"):
        if number == 1:
            ir_version = _signed(value)
        elif number in (2, 3):
            names[number - 2] = _text(data, value)
        elif number == 7:
            graphs.append(value)  # protobuf merges a message field that occurs twice: read both
        elif number == 8:
            entry = _last(data, value, _OPSET, "OperatorSetIdProto")
            opsets[_text(data, entry.get(1)) or "ai.onnx"] = _signed(entry.get(2, 0))
        else:
            entry = _last(data, value, _ENTRY, "StringStringEntryProto")
            metadata[_text(data, entry.get(1))] = _text(data, entry.get(2))
    if ir_version <= 0 or not graphs:
        raise _Corrupt("no ir_version" if ir_version <= 0 else "no graph")
    inputs, outputs, op_counts = _graph(data, graphs)
    producer = " ".join(name for name in names if name)
    return GraphInfo(ir_version, producer, dict(sorted(opsets.items())), inputs, outputs, op_counts, metadata)


def _graph(data: Buffer, spans: list[Span]) -> tuple[tuple[TensorInfo, ...], tuple[TensorInfo, ...], dict[str, int]]:
    inputs: list[TensorInfo] = []
    outputs: list[TensorInfo] = []
    ops: Counter[str] = Counter()
    initialized: set[str] = set()
    for span in spans:
        for number, value in _message(data, span, _GRAPH, "GraphProto"):
            if number == 1:
                node = _last(data, value, _NODE, "NodeProto")
                domain, op_type = _text(data, node.get(7)), _text(data, node.get(4))
                ops[op_type if domain in _DEFAULT_DOMAINS else f"{domain}.{op_type}"] += 1
            elif number in (5, 15):
                initialized.add(_initializer_name(data, value, sparse=number == 15))
            else:
                (inputs if number == 11 else outputs).append(_tensor_info(data, value))
    kept = tuple(t for t in inputs if t.name not in initialized)
    return kept, tuple(outputs), dict(sorted(ops.items()))


def _initializer_name(data: Buffer, span: Span, *, sparse: bool) -> str:
    """The name alone: raw_data and the other payloads are stepped over by their length prefix."""
    if sparse:  # a sparse initializer is named by its values tensor
        span = _last(data, span, _SPARSE, "SparseTensorProto").get(1, (0, 0))
    return _text(data, _last(data, span, _TENSOR, "TensorProto").get(8))


def _tensor_info(data: Buffer, span: Span) -> TensorInfo:
    fields = _last(data, span, _VALUE_INFO, "ValueInfoProto")
    name = _text(data, fields.get(1))
    if 2 not in fields:
        return TensorInfo(name, "undefined", ())
    kinds = _last(data, fields[2], _TYPE, "TypeProto")
    for number in (1, 8):  # tensor_type, sparse_tensor_type: the same Tensor layout
        if number in kinds:
            dtype, shape = _tensor_type(data, kinds[number])
            return TensorInfo(name, dtype if number == 1 else f"sparse_tensor({dtype})", shape)
    kind = next((kind for number, kind in _TYPE_KINDS.items() if number in kinds), "undefined")
    return TensorInfo(name, kind, ())


def _tensor_type(data: Buffer, span: Span) -> tuple[str, tuple[Dim, ...]]:
    fields = _last(data, span, _TENSOR_TYPE, "TypeProto.Tensor")
    elem_type = _signed(fields.get(1, 0))
    dtype = _DTYPES.get(elem_type, f"elem_type({elem_type})")
    if 2 not in fields:
        return dtype, ()
    return dtype, tuple(_dim(data, dim) for _, dim in _message(data, fields[2], _SHAPE, "TensorShapeProto"))


def _dim(data: Buffer, span: Span) -> Dim:
    dim: Dim = None  # neither dim_value nor dim_param: a dimension of unknown size
    for number, value in _message(data, span, _DIM, "TensorShapeProto.Dimension"):
        dim = _signed(value) if number == 1 else _text(data, value)  # a oneof: the last one set wins
    return dim
