"""A report's rows, packed by PostgreSQL into a few large values per time slice and read in
time slices at the same time over several connections, all in one snapshot.

A report reads up to millions of rows. Sent one per protocol message (COPY or plain
rows), they cost PostgreSQL and the client per row: asyncpg wakes for every few dozen
kilobytes, and on a two-core server the client's CPU is taken from the server processes.
Instead each row's fields are appended in binary (`int8send`, `timestamptz_send`, ...)
to one `bytea` per time bucket (`string_agg`, about BUCKETS per slice, in the index's
order), a few hundred values that numpy reads in place as fixed-width records.

The slices of a range run on the report's connection and on extra pool connections that
import its transaction's snapshot (`pg_export_snapshot`), so every slice sees exactly what
the report's own REPEATABLE READ transaction sees. When the pool has no free connection
the slices run one after the other on the report's connection (never waiting for another
request's).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence

import asyncpg
import numpy as np

from leadflow_reporting.domain.funnel import I64

# Connections a fetch reads on at once: the report's and one more (the server has two
# cores).
SLICES = 2
# Buckets (one packed value each) a slice is read in: the per-bucket work (an index
# descent) stays small, and no value nears PostgreSQL's 1 GB limit.
BUCKETS = 64
# How each column is sent and read back.
_SEND = {"int4": "int4send", "int8": "int8send", "timestamptz": "timestamptz_send"}
_WIDTH = {"int4": ">i4", "int8": ">i8", "timestamptz": ">i8"}


def time_slices(lo_us: int, hi_us: int, parts: int = SLICES) -> list[tuple[int, int]]:
    """[lo, hi) cut into `parts` consecutive slices of (nearly) equal length, in order;
    one slice when the range is too short to cut."""
    if parts <= 1 or hi_us - lo_us < parts:
        return [(lo_us, hi_us)]
    cuts = [lo_us + (hi_us - lo_us) * i // parts for i in range(parts + 1)]
    return list(itertools.pairwise(cuts))


def _timestamp(us: int) -> str:
    return f"(timestamptz 'epoch' + interval '{int(us)} microseconds')"


def packed_sql(
    rows: Callable[[str, str], str], kinds: Sequence[str], lo_us: int, hi_us: int
) -> str:
    """The query reading `rows(lo, hi)` (a SELECT of columns of these kinds, given SQL
    expressions of its time bounds) over [lo_us, hi_us) as one packed value per bucket,
    buckets in time order (empty ones NULL)."""
    step = max(-(-(hi_us - lo_us) // BUCKETS), 1)
    names = [f"c{i}" for i in range(len(kinds))]
    record = " || ".join(f"{_SEND[k]}(r.{n})" for k, n in zip(kinds, names, strict=True))
    hi = _timestamp(hi_us)
    inner = rows("s.b", f"LEAST(s.b + interval '{step} microseconds', {hi})")
    return (
        f"SELECT (SELECT string_agg({record}, ''::bytea) FROM ({inner}) AS r({', '.join(names)}))"
        f" FROM generate_series({_timestamp(lo_us)}, {hi} - interval '1 microsecond',"
        f" interval '{step} microseconds') WITH ORDINALITY AS s(b, n) ORDER BY s.n"
    )


async def fetch_packed(conn: asyncpg.Connection, sql: str) -> list[bytes]:
    """A packed query's values, in order, empty buckets left out."""
    return [value for (value,) in await conn.fetch(sql) if value is not None]


async def fetch_slices(
    pool: asyncpg.Pool, conn: asyncpg.Connection, queries: Sequence[str], *, setup: str = ""
) -> list[list[bytes]]:
    """Each packed query's values, in order. `conn` is in a REPEATABLE READ transaction; the
    first query runs on it, the others at the same time on pool connections in its
    snapshot, each after `setup` (statements to repeat there, such as SET LOCAL)."""
    free = _free(pool)
    if len(queries) <= 1 or free == 0:
        return [await fetch_packed(conn, q) for q in queries]
    extra = min(len(queries) - 1, free)
    snapshot = await conn.fetchval("SELECT pg_export_snapshot()")

    async def elsewhere(sql: str) -> list[bytes]:
        async with (
            pool.acquire() as other,
            other.transaction(isolation="repeatable_read", readonly=True),
        ):
            await other.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'; {setup}")
            return await fetch_packed(other, sql)

    # A failed slice cancels the others, so none is left reading on a closed transaction;
    # its error is raised as itself (a bad regex, say, is the caller's to report).
    try:
        async with asyncio.TaskGroup() as group:
            others = [group.create_task(elsewhere(q)) for q in queries[1 : 1 + extra]]
            # Slices beyond the connections available queue up on the report's connection.
            own = [await fetch_packed(conn, q) for q in [queries[0], *queries[1 + extra :]]]
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [own[0], *(t.result() for t in others), *own[1:]]


def _free(pool: asyncpg.Pool) -> int:
    """Connections the pool can hand out without waiting for one to be released."""
    return pool.get_max_size() - pool.get_size() + pool.get_idle_size()


def parse_packed(values: Sequence[bytes], kinds: Sequence[str]) -> list[I64]:
    """The columns (as int64) of packed values, the values' rows one after the other; a
    timestamptz comes as microseconds since 2000-01-01."""
    dtype = np.dtype([(f"f{i}", _WIDTH[k]) for i, k in enumerate(kinds)])
    if any(len(v) % dtype.itemsize for v in values):
        raise ValueError("unexpected row width in packed rows")
    data = np.frombuffer(b"".join(values), dtype=dtype)
    return [data[f"f{i}"].astype(np.int64) for i in range(len(kinds))]
