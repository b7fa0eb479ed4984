"""Export files as bytes: rows encoded as RFC 4180 CSV (CRLF, header first) or JSON lines
(one object per row, the CSV columns as keys), cut into chunks that end on row boundaries.

Pure: no I/O. A row is a tuple of cells in column order; a cell is text, a number, a bool,
None (empty) or Json (text that already is JSON, e.g. an event's properties from the
database, embedded as a value in JSON lines and as text in CSV).
"""

from __future__ import annotations

import csv
import enum
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


class Format(enum.Enum):
    CSV = "csv"
    JSON_LINES = "jsonl"

    @property
    def content_type(self) -> str:
        return "text/csv; charset=utf-8" if self is Format.CSV else "application/x-ndjson"


@dataclass(frozen=True, slots=True)
class Json:
    """Text that is already a JSON document."""

    text: str


Cell = str | int | float | bool | Json | None
Row = Sequence[Cell]
Encoder = Callable[[Row], bytes]


def _csv_cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Json):
        return value.text
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return str(value)


class _Echo:
    """A file for csv.writer whose write hands the line back (writerow returns it)."""

    def write(self, text: str) -> str:
        return text


def csv_encoder() -> Encoder:
    writer = csv.writer(_Echo(), lineterminator="\r\n")

    def encode(row: Row) -> bytes:
        line: str = writer.writerow([_csv_cell(v) for v in row])
        return line.encode()

    return encode


_json_string = json.JSONEncoder(ensure_ascii=False).encode


def _json_cell(value: Cell) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Json):
        return value.text
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "null"
    return str(value)


def json_lines_encoder(columns: Sequence[str]) -> Encoder:
    keys = [_json_string(c) + ":" for c in columns]

    def encode(row: Row) -> bytes:
        body = ",".join(k + _json_cell(v) for k, v in zip(keys, row, strict=True))
        return ("{" + body + "}\n").encode()

    return encode


def encoder(fmt: Format, columns: Sequence[str]) -> Encoder:
    return csv_encoder() if fmt is Format.CSV else json_lines_encoder(columns)


def header(fmt: Format, columns: Sequence[str]) -> bytes:
    """What the file starts with: the CSV header row; nothing for JSON lines."""
    return csv_encoder()(list(columns)) if fmt is Format.CSV else b""


class Chunker:
    """Gathers encoded rows into chunks of at most `target` bytes, each ending on a row
    boundary; a row longer than `target` is a chunk of its own. Holds one chunk at most."""

    def __init__(self, target: int) -> None:
        self._target = target
        self._parts: list[bytes] = []
        self._size = 0

    def add(self, data: bytes) -> bytes | None:
        """Add one row's bytes; returns a full chunk when one is ready."""
        out = None
        if self._size and self._size + len(data) > self._target:
            out = self.flush()
        self._parts.append(data)
        self._size += len(data)
        if out is None and self._size >= self._target:
            out = self.flush()
        return out

    def flush(self) -> bytes | None:
        """The bytes held (None when nothing is held)."""
        if not self._size:
            return None
        out = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        return out


def decimal_text(units: int, nanos: int) -> str:
    """A Money amount (units and nanos of the same sign) as a plain decimal string without
    trailing zeros: (12, 500_000_000) -> "12.5", (-0, -250_000_000) -> "-0.25"."""
    negative = units < 0 or nanos < 0
    units, nanos = abs(units), abs(nanos)
    text = str(units)
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return "-" + text if negative else text


def file_name(
    kind: str, fmt: Format, start_us: int | None = None, end_us: int | None = None
) -> str:
    """e.g. "funnel_2025-03-01_2025-03-31.csv": the range's first and last day (UTC)."""
    if start_us is None or end_us is None:
        return f"{kind}.{fmt.value}"
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    first = epoch + timedelta(microseconds=start_us)
    last = epoch + timedelta(microseconds=max(end_us - 1, start_us))
    return f"{kind}_{first:%Y-%m-%d}_{last:%Y-%m-%d}.{fmt.value}"
