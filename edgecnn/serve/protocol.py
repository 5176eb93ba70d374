"""The Open Inference Protocol's (KServe v2) infer request and response bodies, with the binary tensor
data extension, as Triton and KServe define them: no HTTP here, bytes in and bytes out, numpy only.

A request body is a JSON object, optionally followed by binary tensor data; the HTTP header
``Inference-Header-Content-Length`` says where the JSON ends. An input carries its values either as
``data`` (a flat or nested JSON list, row major) or as ``parameters.binary_data_size`` bytes of the binary
part (little-endian, row major, in the order the inputs are listed). An output is returned as binary data
when its ``parameters.binary_data`` (or the request's ``binary_data_output``) is true. Everything a client
sends is checked before a tensor is built: sizes against the declared shape and datatype, the binary
part's total against the body, so no malformed body allocates more than it sent.
"""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgecnn.errors import InputError

__all__ = [
    "DATATYPES",
    "ProtocolError",
    "TensorRequest",
    "InferRequest",
    "decode_infer_request",
    "encode_infer_response",
]

DATATYPES = {  # the protocol's tensor types that image classifiers take or give, and numpy's
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "INT8": np.dtype("<i1"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_NAMES = {dtype: name for name, dtype in DATATYPES.items()}
MAX_DIMS = 32  # dimensions of an input tensor (numpy's own limit is 64)
_REPR = reprlib.Repr()  # a client's value in an error message: 3 levels, a few items, short strings
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 3, 8, 4, 40, 40
MAX_VALUES = 1 << 40  # values in one tensor's shape: far past any body, and within what numpy can describe


class ProtocolError(InputError):
    """A request the protocol cannot accept; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TensorRequest:
    name: str
    binary: bool  # the client asked for this output as binary data


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: tuple[TensorRequest, ...] = ()  # empty: every output, as JSON unless binary_data_output
    binary_output: bool = False  # the request's binary_data_output parameter
    parameters: dict[str, Any] = field(default_factory=dict)


def decode_infer_request(
    body: bytes, header_length: int | None = None, *, max_elements: int | None = None
) -> InferRequest:
    """The request in ``body``; ``header_length``: the value of Inference-Header-Content-Length, if sent;
    ``max_elements``: the most tensor elements one input may declare (a 413 beyond, before anything is built)."""
    if header_length is not None and not 0 < header_length <= len(body):
        raise ProtocolError(f"Inference-Header-Content-Length {header_length} does not fit a {len(body)}-byte body")
    head, binary = (body[:header_length], body[header_length:]) if header_length else (body, b"")
    request = _parse_json(head)
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list) or not request["inputs"]:
        raise ProtocolError("the request must be a JSON object with a non-empty 'inputs' list")
    inputs, offset = {}, 0
    for item in request["inputs"]:
        name, array, used = _decode_input(item, binary, offset, max_elements)
        if name in inputs:
            raise ProtocolError(f"input {name!r} is given twice")
        inputs[name], offset = array, offset + used
    if offset != len(binary):
        raise ProtocolError(f"the body has {len(binary) - offset} bytes of binary data no input claims")
    if not isinstance(request.get("id", ""), (str, type(None))):
        raise ProtocolError(f"'id' must be a string (got {_short(request['id'])})")
    parameters = _parameters(request, "the request")
    return InferRequest(
        id=request.get("id"),
        inputs=inputs,
        outputs=tuple(_requested_output(o) for o in _list(request.get("outputs", []), "outputs")),
        binary_output=_flag(parameters, "binary_data_output", "the request"),
        parameters=parameters,
    )


def _parse_json(head: bytes) -> Any:
    try:
        return json.loads(head)
    except RecursionError as exc:
        raise ProtocolError("the request's JSON is nested too deeply to read") from exc
    except ValueError as exc:  # not JSON, not UTF-8, or an integer past Python's digit limit
        raise ProtocolError(f"the request is not valid JSON ({_short(str(exc), 120, quote=False)})") from exc


def _decode_input(item: Any, binary: bytes, offset: int, max_elements: int | None) -> tuple[str, np.ndarray, int]:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise ProtocolError("every input needs a 'name' (a string)")
    name, datatype = item["name"], item.get("datatype")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise ProtocolError(f"input {name!r}: datatype {_short(datatype)} is not one of {', '.join(DATATYPES)}")
    dtype, shape = DATATYPES[datatype], _shape(name, item.get("shape"))
    count = math.prod(shape)
    if max_elements is not None and count > max_elements:
        raise ProtocolError(
            f"input {name!r}: shape {shape} holds {count:,} values; this server takes at most {max_elements:,}", 413
        )
    size = _parameters(item, f"input {name!r}").get("binary_data_size")
    if size is not None:
        if type(size) is not int or size != count * dtype.itemsize or offset + size > len(binary):
            raise ProtocolError(
                f"input {name!r}: binary_data_size {_short(size)} does not match {datatype} {shape} "
                f"({count * dtype.itemsize} bytes) or the {len(binary) - offset} bytes left in the body"
            )
        return name, np.frombuffer(binary, dtype, count, offset).reshape(shape), size
    if "data" not in item:
        raise ProtocolError(f"input {name!r} has neither 'data' nor parameters.binary_data_size")
    return name, _json_tensor(name, item["data"], dtype, shape), 0


def _shape(name: str, shape: Any) -> list[int]:
    """At most MAX_DIMS whole sizes whose product, a zero counted as one, is below MAX_VALUES: numpy refuses an
    empty array of a shape it could not hold were it full, and any count then prints in an error message."""
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_DIMS
        or not all(type(d) is int and d >= 0 for d in shape)
        or math.prod(d or 1 for d in shape) >= MAX_VALUES
    ):
        raise ProtocolError(
            f"input {name!r}: 'shape' must be a list of at most {MAX_DIMS} whole sizes holding fewer than "
            f"2**{MAX_VALUES.bit_length() - 1} values (got {_short(shape)})"
        )
    return shape


def _json_tensor(name: str, data: Any, dtype: np.dtype, shape: list[int]) -> np.ndarray:
    if not isinstance(data, list):
        raise ProtocolError(f"input {name!r}: 'data' must be a list of numbers (got {_short(data)})")
    try:
        array = np.asarray(data, dtype=np.float64 if dtype.kind == "f" else None)
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise ProtocolError(f"input {name!r}: 'data' is not a rectangular list of numbers") from exc
    if array.dtype.kind not in "biuf":
        raise ProtocolError(f"input {name!r}: 'data' is not a rectangular list of numbers ({_NAMES[dtype]})")
    if array.size != math.prod(shape):
        raise ProtocolError(
            f"input {name!r}: 'data' holds {array.size} numbers, shape {shape} needs {math.prod(shape)}"
        )
    if dtype.kind in "iub" and not (array.size == 0 or np.array_equal(array, np.round(array))):
        raise ProtocolError(f"input {name!r}: {_NAMES[dtype]} data must be whole numbers")
    if dtype.kind == "b" and not np.isin(array, (0, 1)).all():
        raise ProtocolError(f"input {name!r}: BOOL data must be true/false (or 1/0)")
    info = np.iinfo(dtype) if dtype.kind in "iu" else None
    if info is not None and array.size and (array.min() < info.min or array.max() > info.max):
        raise ProtocolError(f"input {name!r}: values outside {_NAMES[dtype]}'s range {info.min}..{info.max}")
    return array.astype(dtype).reshape(shape)


def _requested_output(item: Any) -> TensorRequest:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise ProtocolError("every requested output needs a 'name' (a string)")
    what = f"output {item['name']!r}"
    return TensorRequest(item["name"], _flag(_parameters(item, what), "binary_data", what))


def _parameters(item: Mapping[str, Any], what: str) -> dict[str, Any]:
    parameters = item.get("parameters", {})
    if not isinstance(parameters, dict):
        raise ProtocolError(f"{what}: 'parameters' must be an object")
    return parameters


def _flag(parameters: Mapping[str, Any], key: str, what: str) -> bool:
    value = parameters.get(key, False)
    if not isinstance(value, bool):
        raise ProtocolError(f"{what}: parameters.{key} must be true or false (got {_short(value)})")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ProtocolError(f"'{what}' must be a list")
    return value


def _short(value: Any, limit: int = 60, *, quote: bool = True) -> str:
    """A client's value for an error message: a few levels and items of its repr, at most ``limit`` characters
    (a body can be megabytes, or lists nested hundreds deep)."""
    text = _REPR.repr(value) if quote else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def encode_infer_response(
    model_name: str,
    outputs: Mapping[str, np.ndarray],
    binary: set[str],
    *,
    request_id: str | None = None,
    model_version: str = "1",
) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, its Inference-Header-Content-Length."""
    entries, blobs = [], []
    for name, array in outputs.items():
        array = np.ascontiguousarray(array)
        entry: dict[str, Any] = {
            "name": name,
            "datatype": _NAMES[array.dtype.newbyteorder("<")],
            "shape": list(array.shape),
        }
        if name in binary:
            data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            entry["parameters"] = {"binary_data_size": len(data)}
            blobs.append(data)
        else:
            entry["data"] = array.ravel().tolist()
        entries.append(entry)
    response: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": entries}
    if request_id is not None:
        response["id"] = request_id
    head = json.dumps(response, separators=(",", ":")).encode()
    return (head + b"".join(blobs), len(head)) if blobs else (head, None)
