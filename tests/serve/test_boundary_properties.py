"""Property tests of the server's boundary, in-process: the infer body decoder over any JSON value in any field
and any bytes, and the parsers of what a client writes in headers and parameters over any text. Each input
ends in a decoded request or a ProtocolError with a 4xx status and one short line — never another exception."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from edgecnn.serve.bodies import classify_options, read_count
from edgecnn.serve.protocol import ProtocolError, decode_infer_request

MAX_ELEMENTS = 16 * 784
# Any JSON value: nested lists and objects, huge and negative integers, floats, NaN-free text with any code point
scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=12)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=40,
)
FIELDS = ("id", "inputs", "outputs", "parameters", "name", "datatype", "shape", "data", "binary_data_size")


def _template() -> dict:
    return {
        "id": "r1",
        "inputs": [{"name": "input", "datatype": "UINT8", "shape": [1, 28, 28], "data": [0] * 784}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
        "parameters": {"binary_data_output": False},
    }


def _put(request: dict, field: str, value: object) -> dict:
    """``request`` with ``field`` (a top-level key, an input's key, or binary_data_size) set to ``value``."""
    if field in ("id", "inputs", "outputs", "parameters"):
        request[field] = value
    elif field == "binary_data_size":
        request["inputs"][0]["parameters"] = {"binary_data_size": value}
    else:
        request["inputs"][0][field] = value
    return request


def _decodes_or_refuses(body: bytes, length: int | None = None) -> None:
    try:
        decoded = decode_infer_request(body, length, max_elements=MAX_ELEMENTS)
    except ProtocolError as exc:
        assert exc.status in (400, 413), exc.status
        text = str(exc)
        assert text and "\n" not in text and len(text) < 600, text
        text.encode("utf-8")  # prints anywhere: what the client sent is quoted, not pasted
        return
    for array in decoded.inputs.values():
        assert isinstance(array, np.ndarray) and array.size <= MAX_ELEMENTS


@given(st.sampled_from(FIELDS), json_values)
def test_any_json_value_in_any_field_is_decoded_or_refused_with_a_4xx(field, value):
    _decodes_or_refuses(json.dumps(_put(_template(), field, value)).encode())


@given(json_values)
def test_any_json_document_is_decoded_or_refused_with_a_4xx(value):
    _decodes_or_refuses(json.dumps(value).encode())


@given(st.binary(max_size=300), st.none() | st.integers(-5, 400))
def test_any_bytes_and_header_length_are_decoded_or_refused_with_a_4xx(body, length):
    _decodes_or_refuses(body, length)


@given(st.integers(1, 30), st.integers(0, 6000))
def test_nesting_and_long_integers_past_the_parser_are_refused_with_a_400(depth, digits):
    nested = b"[" * (depth * 40) + b"]" * (depth * 40)
    _decodes_or_refuses(b'{"inputs":[{"name":"input","datatype":"UINT8","shape":[1],"data":' + nested + b"}]}")
    _decodes_or_refuses(b'{"inputs":[{"name":"input","datatype":"UINT8","shape":[' + b"9" * digits + b"]}]}")


@given(st.lists(st.integers(0, 2**80), max_size=40), st.sampled_from(["UINT8", "FP32", "BOOL"]))
def test_any_shape_is_refused_before_anything_is_allocated_unless_it_fits(shape, datatype):
    request = {"inputs": [{"name": "x", "datatype": datatype, "shape": shape, "parameters": {"binary_data_size": 0}}]}
    _decodes_or_refuses(json.dumps(request).encode())


# Counts as clients write them, and their near misses: ASCII digits (some too long), other scripts' digits
# (int() reads "٣" as 3), signs and blanks around them, and any text at all.
COUNTS = st.one_of(
    st.text(),
    st.from_regex(r"\A[ \t]*[+-]?[0-9]{1,25}[ \t]*\Z"),
    st.text(alphabet="0123456789٠١٢٣٤٥٦٧٨٩०१२³ \t", min_size=1, max_size=22),
)


@given(COUNTS)
def test_a_count_is_ascii_digits_only(text):
    count = read_count(text)
    stripped = text.strip(" \t")
    if count is None:
        assert not (stripped.isascii() and stripped.isdigit() and len(stripped) <= 18)
    else:
        assert count == int(stripped) and stripped.isascii() and stripped.isdigit()


@given(st.dictionaries(st.sampled_from(["top_k", "fit", "invert", "other"]), st.text(max_size=30), max_size=4))
def test_classify_options_take_any_text_and_answer_or_refuse_with_a_400(query):
    try:
        options = classify_options(query, {}, 10)
    except ProtocolError as exc:
        assert exc.status == 400 and "\n" not in str(exc)
        return
    assert 1 <= options["top_k"] <= 10 and isinstance(options["invert"], bool)
