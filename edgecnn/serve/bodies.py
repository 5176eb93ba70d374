"""Request bodies, read within the server's limits before anything is decoded: the declared length first,
then the bytes as they arrive, then (``Content-Encoding: gzip`` or ``deflate``, as tritonclient sends with
``request_compression_algorithm``) the inflated size, so a small compressed body cannot become a large one.
And classify's uploads: a raw image body, or the files of a multipart form plus its few text fields.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from edgecnn.config import FIT_MODES
from edgecnn.serve.models import Upload
from edgecnn.serve.protocol import ProtocolError

__all__ = ["read_body", "read_uploads", "classify_options", "header_length", "read_count"]

_ENCODINGS = ("identity", "gzip", "deflate")
CLASSIFY_OPTIONS = ("top_k", "fit", "invert")  # query parameters, or text fields of a multipart form
# A count a client writes in a header or a parameter: ASCII digits only (str.isdigit also takes "²" and "٣", which
# int() then refuses or reads), and few enough that int() is cheap and never meets Python's digit limit.
_COUNT = re.compile(r"[0-9]{1,18}")


def read_count(text: str) -> int | None:
    """``text`` as a whole number of ASCII digits (surrounding spaces allowed), or None."""
    text = text.strip(" \t")
    return int(text) if _COUNT.fullmatch(text) else None


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, decompressed; a ProtocolError 413 past ``limit`` bytes, 415 for an unknown encoding."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in _ENCODINGS:
        raise ProtocolError(f"Content-Encoding {encoding!r} is not accepted: send {', '.join(_ENCODINGS)}", 415)
    declared = read_count(request.headers.get("content-length", ""))
    if declared is not None and declared > limit:
        raise _too_large(declared, limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    return body if encoding == "identity" else _inflate(body, encoding, limit)


def _inflate(body: bytes, encoding: str, limit: int) -> bytes:
    inflater = zlib.decompressobj(47)  # 32 + 15: a zlib or a gzip header, whichever the client wrote
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ProtocolError(f"the body is not valid {encoding} data ({exc})") from exc
    if len(data) > limit or inflater.unconsumed_tail:
        raise ProtocolError(f"the body inflates past this server's limit of {limit:,} bytes (--max-body-bytes)", 413)
    if not inflater.eof:
        raise ProtocolError(f"the {encoding} body is truncated")
    return data


def _too_large(size: int, limit: int) -> ProtocolError:
    return ProtocolError(
        f"the body has {size:,} bytes or more; this server takes at most {limit:,} (--max-body-bytes)", 413
    )


def header_length(request: Request) -> int | None:
    """Inference-Header-Content-Length, if sent: where the JSON of a binary-extension body ends."""
    value = request.headers.get("inference-header-content-length")
    if value is None:
        return None
    count = read_count(value)
    if count is None:
        raise ProtocolError(f"Inference-Header-Content-Length must be a byte count (got {value[:40]!r})")
    return count


async def read_uploads(request: Request, body: bytes, max_images: int) -> tuple[list[Upload], dict[str, str]]:
    """A multipart form's files (in order) and text fields; any other body is one image."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        if not body:
            raise ProtocolError("the body is empty: send an image, or a multipart form of images")
        return [Upload("the request body", body)], {}
    parser = MultiPartParser(request.headers, _once(body), max_files=max_images, max_fields=len(CLASSIFY_OPTIONS))
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        too_many = exc.message.startswith("Too many files")
        message = f"more than {max_images} images in one request" if too_many else f"bad multipart form: {exc.message}"
        raise ProtocolError(message, 413 if too_many else 400) from exc
    uploads, fields = [], {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            uploads.append(Upload(_printable(value.filename or key), await value.read()))
            await value.close()
        else:
            fields[key] = value
    if not uploads:
        raise ProtocolError("the form holds no image files")
    return uploads, fields


def _printable(name: str) -> str:
    """A file name as a client sent it, safe to print and to encode: a form's charset (utf-7, unicode_escape)
    can make lone surrogates, which no UTF-8 writer takes."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")[:200]


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


def classify_options(query: Mapping[str, str], fields: Mapping[str, str], classes: int) -> dict[str, Any]:
    """top_k (default 1), fit (default: the model's) and invert (default true), checked."""
    given = {**query, **fields}
    unknown = sorted(set(given) - set(CLASSIFY_OPTIONS))
    if unknown:
        raise ProtocolError(f"unknown parameter {unknown[0][:40]!r}: classify takes {', '.join(CLASSIFY_OPTIONS)}")
    top_k = read_count(given.get("top_k", "1"))
    if top_k is None or not 1 <= top_k <= classes:
        raise ProtocolError(f"top_k must be a whole number from 1 to {classes} (got {given['top_k'][:40]!r})")
    fit = given.get("fit")
    if fit is not None and fit not in FIT_MODES:
        raise ProtocolError(f"fit must be one of {', '.join(FIT_MODES)} (got {fit[:40]!r})")
    invert = given.get("invert", "true").lower()
    if invert not in ("true", "false", "1", "0"):
        raise ProtocolError(f"invert must be true or false (got {invert[:40]!r})")
    return {"top_k": top_k, "fit": fit, "invert": invert in ("true", "1")}
