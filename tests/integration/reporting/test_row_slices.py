"""Report rows read packed in slices over several connections see exactly the report's
snapshot: a row committed after the report's transaction began is in no slice, every row of
a slice comes once and in order across its buckets, slices beyond the free connections run
on the report's own, and a failed slice leaves no read running."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import asyncpg
import pytest

from leadflow_reporting.db.row_slices import fetch_slices, packed_sql, parse_packed

pytestmark = pytest.mark.integration

KINDS = ["int4", "int4"]


def rows(lo: str, hi: str) -> str:
    return f"SELECT id, pg_backend_pid() FROM t WHERE at >= {lo} AND at < {hi} ORDER BY id"


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(database_url, min_size=1, max_size=3) as pool:
        # Row n at n microseconds after the epoch.
        await pool.execute("CREATE TABLE t (id int PRIMARY KEY, at timestamptz NOT NULL)")
        await pool.execute(
            "INSERT INTO t SELECT n, timestamptz 'epoch' + n * interval '1 microsecond'"
            " FROM generate_series(0, 99) AS n"
        )
        yield pool


def slices(*bounds: int) -> list[str]:
    return [packed_sql(rows, KINDS, lo, hi) for lo, hi in itertools.pairwise(bounds)]


def parsed(values: list[bytes]) -> tuple[list[int], set[int]]:
    ids, pids = parse_packed(values, KINDS)
    return ids.tolist(), set(pids.tolist())


async def test_slices_read_the_reports_snapshot_on_other_connections(
    pool: asyncpg.Pool, database_url: str
) -> None:
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        assert await conn.fetchval("SELECT count(*) FROM t") == 100
        # Committed after the report's snapshot was taken: no slice may see it.
        writer = await asyncpg.connect(database_url)
        try:
            await writer.execute(
                "INSERT INTO t VALUES (150, timestamptz 'epoch' + interval '70 microseconds')"
            )
            await writer.execute("DELETE FROM t WHERE id = 60")
        finally:
            await writer.close()
        first, second = [parsed(v) for v in await fetch_slices(pool, conn, slices(0, 50, 1000))]
        own = await conn.fetchval("SELECT pg_backend_pid()")
    assert first == (list(range(50)), {own})
    assert second[0] == list(range(50, 100))
    assert own not in second[1], "the second slice ran on another connection"
    assert await pool.fetchval("SELECT count(*) FROM t") == 100


async def test_slices_beyond_the_free_connections_run_on_the_reports(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        own = await conn.fetchval("SELECT pg_backend_pid()")
        # The pool has two more connections: four slices use one of them and queue the
        # other two on the report's connection, in order.
        async with pool.acquire():
            got = [parsed(v) for v in await fetch_slices(pool, conn, slices(0, 10, 20, 30, 100))]
    assert [ids for ids, _ in got] == [
        list(range(10)),
        list(range(10, 20)),
        list(range(20, 30)),
        list(range(30, 100)),
    ]
    assert [pids == {own} for _, pids in got] == [True, False, True, True]


async def test_a_failed_slice_fails_the_fetch_and_frees_the_connections(
    pool: asyncpg.Pool,
) -> None:
    def failing(lo: str, hi: str) -> str:
        return f"SELECT id, 1 / (id - 70) FROM t WHERE at >= {lo} AND at < {hi}"

    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.DivisionByZeroError):
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                await fetch_slices(
                    pool, conn, [*slices(0, 50), packed_sql(failing, KINDS, 50, 100)]
                )
        assert await conn.fetchval("SELECT count(*) FROM t") == 100
    assert pool.get_idle_size() == pool.get_size()
