"""``edgecnn predict --output``: the predictions of a folder (or a million files) as one CSV, JSONL or Parquet file,
written atomically and resumable after a kill, one row per image file — an image that could not be read is a
row with its error, never a gap.

While a run goes, what is classified is kept in ``OUTPUT.parts/``: a ``run.json`` naming what makes the rows
(the model's SHA-256, top-k, framing, inversion) and part files of rows, each written whole (temp file and
``os.replace``), so a killed run leaves only complete parts. A run given the same output reads the parts and
classifies only the files they do not hold (a run with another model or other options is refused, so rows never
mix); at the end every file listed has exactly one row (the first part's, should a file be in two), the output is
written in the input's order beside it and moved into place, and the parts are removed.

Columns: ``file``, ``label``, ``index``, ``probability``, ``top_k`` and ``error`` (empty where it read). In CSV
and Parquet ``top_k`` is JSON text (``[{"label": …, "probability": …}, …]``); JSONL rows hold it as a list.
Parquet needs pyarrow (Ray Data brings it; ``pip install pyarrow`` otherwise).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from edgecnn.errors import ConfigError, describe
from edgecnn.files import atomic_path, check_writable

__all__ = ["RESULT_FORMATS", "COLUMNS", "ResultFile", "result_row", "error_row"]

RESULT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}
COLUMNS = ("file", "label", "index", "probability", "top_k", "error")
_RUN = "run.json"


def result_row(file: str, prediction: dict[str, Any]) -> dict[str, Any]:
    """A row for a classified file, from ``Prediction.to_dict()``."""
    return {"file": file, **{k: prediction[k] for k in ("label", "index", "probability", "top_k")}, "error": ""}


def error_row(file: str, error: str) -> dict[str, Any]:
    """A row for a file that could not be classified: its error, in the single-process command's words."""
    return {"file": file, "label": "", "index": -1, "probability": None, "top_k": [], "error": error}


class ResultFile:
    """The output at ``path`` and its parts; ``run`` describes what makes the rows (refused if the parts differ)."""

    def __init__(self, path: str | os.PathLike[str], run: dict[str, Any]) -> None:
        self.path = Path(path)
        self.format = RESULT_FORMATS.get(self.path.suffix.lower())
        if self.format is None:
            raise ConfigError(f"--output {self.path}: name a .csv, .jsonl or .parquet file")
        if self.format == "parquet":
            _pyarrow()
        check_writable(self.path, what="--output")
        self.parts = self.path.with_name(self.path.name + ".parts")
        self.run = run
        self.rows: dict[str, dict[str, Any]] = {}
        self._next = 0
        self._open_parts()

    @property
    def done(self) -> set[str]:
        return set(self.rows)

    def _open_parts(self) -> None:
        try:
            self.parts.mkdir(parents=True, exist_ok=True)
            recorded = self.parts / _RUN
            if recorded.exists():
                earlier = json.loads(recorded.read_text(encoding="utf-8"))
                if earlier != self.run:
                    raise ConfigError(
                        f"{self.parts} holds the rows of a run with {_differs(earlier, self.run)}: "
                        f"delete it to start over, or run as before to finish it"
                    )
            else:
                _write(recorded, json.dumps(self.run, sort_keys=True).encode())
            for part in sorted(self.parts.glob("part-*.jsonl")):
                self._next = max(self._next, int(part.stem.split("-")[1]) + 1)
                for line in part.read_text(encoding="utf-8").splitlines():
                    row = json.loads(line)
                    self.rows.setdefault(row["file"], row)
        except (OSError, ValueError, KeyError, IndexError) as exc:
            raise ConfigError(f"cannot use {self.parts} for the run's rows: {describe(exc)}") from exc

    def add(self, rows: Sequence[dict[str, Any]]) -> None:
        """Keep ``rows`` as one more part (whole or not at all)."""
        if not rows:
            return
        text = "".join(json.dumps(_plain(row)) + "\n" for row in rows)
        _write(self.parts / f"part-{self._next:06d}.jsonl", text.encode())
        self._next += 1
        for row in rows:
            self.rows.setdefault(row["file"], row)

    def finish(self, order: Iterable[str]) -> int:
        """Write the output, one row per file of ``order`` (every one must have its row), remove the parts; the
        number of rows with an error."""
        order = list(dict.fromkeys(order))
        missing = [file for file in order if file not in self.rows]
        if missing:
            raise ConfigError(
                f"{len(missing)} file(s) have no row (first: {missing[0]}); the rows so far are kept in {self.parts}"
            )
        rows = [self.rows[file] for file in order]
        _write(self.path, _encode(rows, self.format))
        shutil.rmtree(self.parts, ignore_errors=True)
        return sum(1 for row in rows if row["error"])


def _write(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _differs(earlier: dict[str, Any], now: dict[str, Any]) -> str:
    keys = sorted(k for k in set(earlier) | set(now) if earlier.get(k) != now.get(k))
    return ", ".join(f"{k} {earlier.get(k)!r} (now {now.get(k)!r})" for k in keys) or "other settings"


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready: numpy scalars as Python numbers, top_k as a list of dicts."""
    top_k = row["top_k"]
    if isinstance(top_k, str):
        top_k = json.loads(top_k) if top_k else []
    return {
        "file": str(row["file"]),
        "label": str(row["label"]),
        "index": int(row["index"]),
        "probability": None if row["probability"] is None else float(row["probability"]),
        "top_k": [{"label": str(t["label"]), "probability": float(t["probability"])} for t in top_k],
        "error": str(row["error"] or ""),
    }


def _encode(rows: list[dict[str, Any]], kind: str) -> bytes:
    if kind == "jsonl":
        return "".join(json.dumps(row) + "\n" for row in rows).encode()
    flat = [{**row, "top_k": json.dumps(row["top_k"])} for row in rows]
    if kind == "csv":
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(
            {**row, "probability": "" if row["probability"] is None else row["probability"]} for row in flat
        )
        return text.getvalue().encode()
    pa, pq = _pyarrow()
    table = pa.Table.from_pylist(flat, schema=pa.schema([(c, _ARROW_TYPES[c](pa)) for c in COLUMNS]))
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


_ARROW_TYPES = {
    "file": lambda pa: pa.string(),
    "label": lambda pa: pa.string(),
    "index": lambda pa: pa.int64(),
    "probability": lambda pa: pa.float64(),
    "top_k": lambda pa: pa.string(),
    "error": lambda pa: pa.string(),
}


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ConfigError("a .parquet --output needs pyarrow: pip install pyarrow (or 'edgecnn[ray]')") from exc
    return pa, pq
