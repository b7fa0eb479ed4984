"""Report rows read in slices over several connections see exactly the report's snapshot:
a row committed after the report's transaction began is in no slice, slices beyond the free
connections run on the report's own, and a failed slice leaves no COPY running."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import asyncpg
import pytest

from leadflow_reporting.db.copy_slices import copy_slices, parse_fixed

pytestmark = pytest.mark.integration

ROWS = "SELECT id, pg_backend_pid() FROM t WHERE id >= {lo} AND id < {hi} ORDER BY id"


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(database_url, min_size=1, max_size=3) as pool:
        await pool.execute("CREATE TABLE t (id int PRIMARY KEY)")
        await pool.execute("INSERT INTO t SELECT generate_series(0, 99)")
        yield pool


def slices(*bounds: int) -> list[str]:
    return [ROWS.format(lo=lo, hi=hi) for lo, hi in itertools.pairwise(bounds)]


async def test_slices_read_the_reports_snapshot_on_other_connections(
    pool: asyncpg.Pool, database_url: str
) -> None:
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        assert await conn.fetchval("SELECT count(*) FROM t") == 100
        # Committed after the report's snapshot was taken: no slice may see it.
        writer = await asyncpg.connect(database_url)
        try:
            await writer.execute("INSERT INTO t VALUES (150), (50000)")
            await writer.execute("DELETE FROM t WHERE id = 60")
        finally:
            await writer.close()
        streams = await copy_slices(pool, conn, slices(0, 50, 1000))
        ids, pids = zip(*(parse_fixed([s], [">i4", ">i4"]) for s in streams), strict=True)
        assert [i.tolist() for i in ids] == [list(range(50)), list(range(50, 100))]
        own = await conn.fetchval("SELECT pg_backend_pid()")
        assert set(pids[0].tolist()) == {own}
        assert set(pids[1].tolist()) - {own}, "the second slice ran on another connection"
    assert await pool.fetchval("SELECT count(*) FROM t") == 101


async def test_slices_beyond_the_free_connections_run_on_the_reports(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        own = await conn.fetchval("SELECT pg_backend_pid()")
        # The pool has two more connections: four slices use one of them and queue the
        # other two on the report's connection, in order.
        async with pool.acquire():
            streams = await copy_slices(pool, conn, slices(0, 10, 20, 30, 100))
        got = [parse_fixed([s], [">i4", ">i4"]) for s in streams]
    assert [ids.tolist() for ids, _ in got] == [
        list(range(10)),
        list(range(10, 20)),
        list(range(20, 30)),
        list(range(30, 100)),
    ]
    on_own = [set(pids.tolist()) == {own} for _, pids in got]
    assert on_own == [True, False, True, True]


async def test_a_failed_slice_fails_the_fetch_and_frees_the_connections(
    pool: asyncpg.Pool,
) -> None:
    failing = "SELECT id, 1 / (id - 70) FROM t WHERE id >= 50"
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.DivisionByZeroError):
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                await copy_slices(pool, conn, [*slices(0, 50), failing])
        assert await conn.fetchval("SELECT count(*) FROM t") == 100
    assert pool.get_idle_size() == pool.get_size()
