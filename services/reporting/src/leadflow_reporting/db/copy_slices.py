"""Binary COPY of a report's rows in time slices read at the same time over several
connections, all in one snapshot.

A report's fetch is bound by PostgreSQL's per-row work (an index-only scan and one COPY
message per row), which one server process does on one core. The slices of a range run
on the report's connection and on extra pool connections that import its transaction's
snapshot (`pg_export_snapshot`), so every slice sees exactly what the report's own
REPEATABLE READ transaction sees. When the pool has no free connection the slices run one
after the other on the report's connection (never waiting for another request's).
"""

from __future__ import annotations

import asyncio
import itertools
import struct
from collections.abc import Sequence

import asyncpg
import numpy as np

from leadflow_reporting.domain.funnel import I64

# Connections a fetch reads on at once: the report's and one more (the server has two
# cores; a third slice measured no faster).
SLICES = 2
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_TRAILER = b"\xff\xff"


def time_slices(lo_us: int, hi_us: int, parts: int = SLICES) -> list[tuple[int, int]]:
    """[lo, hi) cut into `parts` consecutive slices of (nearly) equal length, in order;
    one slice when the range is too short to cut."""
    if parts <= 1 or hi_us - lo_us < parts:
        return [(lo_us, hi_us)]
    cuts = [lo_us + (hi_us - lo_us) * i // parts for i in range(parts + 1)]
    return list(itertools.pairwise(cuts))


async def copy_binary(conn: asyncpg.Connection, sql: str) -> bytes:
    """One query's rows as a binary COPY stream (collected in memory by a coroutine sink:
    a file object would have every chunk written through the thread pool)."""
    chunks: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        chunks.append(chunk)

    await conn.copy_from_query(sql, output=sink, format="binary")
    return b"".join(chunks)


async def copy_slices(
    pool: asyncpg.Pool, conn: asyncpg.Connection, queries: Sequence[str], *, setup: str = ""
) -> list[bytes]:
    """Each query's binary COPY, in order. `conn` is in a REPEATABLE READ transaction; the
    first query runs on it, the others at the same time on pool connections in its
    snapshot, each after `setup` (statements to repeat there, such as SET LOCAL)."""
    free = _free(pool)
    if len(queries) <= 1 or free == 0:
        return [await copy_binary(conn, q) for q in queries]
    extra = min(len(queries) - 1, free)
    snapshot = await conn.fetchval("SELECT pg_export_snapshot()")

    async def elsewhere(sql: str) -> bytes:
        async with (
            pool.acquire() as other,
            other.transaction(isolation="repeatable_read", readonly=True),
        ):
            await other.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'; {setup}")
            return await copy_binary(other, sql)

    # A failed slice cancels the others, so none is left reading on a closed transaction;
    # its error is raised as itself (a bad regex, say, is the caller's to report).
    try:
        async with asyncio.TaskGroup() as group:
            others = [group.create_task(elsewhere(q)) for q in queries[1 : 1 + extra]]
            # Slices beyond the connections available queue up on the report's connection.
            own = [await copy_binary(conn, q) for q in [queries[0], *queries[1 + extra :]]]
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [own[0], *(t.result() for t in others), *own[1:]]


def _free(pool: asyncpg.Pool) -> int:
    """Connections the pool can hand out without waiting for one to be released."""
    return pool.get_max_size() - pool.get_size() + pool.get_idle_size()


def copy_body(raw: bytes) -> memoryview:
    """The tuples of a binary COPY stream (header and trailer stripped)."""
    if not raw.startswith(_SIGNATURE) or not raw.endswith(_TRAILER):
        raise ValueError("not a binary COPY stream")
    (extension,) = struct.unpack_from(">i", raw, len(_SIGNATURE) + 4)
    return memoryview(raw)[len(_SIGNATURE) + 8 + extension : -len(_TRAILER)]


def parse_fixed(streams: Sequence[bytes], columns: Sequence[str]) -> list[I64]:
    """The columns (as int64) of binary COPY streams of fixed-width fields, the streams'
    rows one after the other; `columns` gives each field's numpy type (">i2", ">i4" or
    ">i8"; a timestamptz is ">i8", microseconds since 2000-01-01)."""
    fields: list[tuple[str, str]] = [("n", ">i2")]
    for i, kind in enumerate(columns):
        fields += [(f"l{i}", ">i4"), (f"f{i}", kind)]
    dtype = np.dtype(fields)
    bodies = [copy_body(raw) for raw in streams]
    if any(len(body) % dtype.itemsize for body in bodies):
        raise ValueError("unexpected row width in COPY stream")
    total = sum(len(body) // dtype.itemsize for body in bodies)
    out = [np.empty(total, dtype=np.int64) for _ in columns]
    at = 0
    for body in bodies:
        # Each stream read in place, its fields converted straight into the columns.
        data = np.frombuffer(body, dtype=dtype)
        if len(data) and not (data["n"] == len(columns)).all():
            raise ValueError("unexpected column count in COPY stream")
        for i, column in enumerate(out):
            column[at : at + len(data)] = data[f"f{i}"]
        at += len(data)
    return out
