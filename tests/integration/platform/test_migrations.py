"""Migrations: from scratch, twice, by several replicas at once, and never edited."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from probe.service import SPEC

from leadflow_platform.db.migrations_runner import Migration, MigrationError, migrate
from leadflow_platform.provision import migrate_all

pytestmark = pytest.mark.integration


async def _tables(conn, schema: str) -> set[str]:
    rows = await conn.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
    )
    return {r["table_name"] for r in rows}


async def test_apply_from_scratch_then_again(database_url):
    applied = await migrate_all(database_url, [SPEC])
    assert [(m.component, m.version) for m in applied] == [
        ("tenancy", 1),
        ("messaging", 1),
        ("messaging", 2),
        ("messaging", 3),
        ("probe", 1),
    ]
    assert await migrate_all(database_url, [SPEC]) == []
    conn = await asyncpg.connect(database_url)
    try:
        assert await _tables(conn, "probe") == {
            "schema_migrations", "outbox", "inbox", "dead_letters", "notes", "applied",
        }  # fmt: skip
        assert await _tables(conn, "tenancy") >= {"tenants", "api_keys"}
    finally:
        await conn.close()


async def test_replicas_migrating_at_once_apply_each_file_once(database_url):
    migrations = [
        *SPEC.migrations(),
        Migration("probe", 2, "slow_change", "SELECT pg_sleep(0.3); CREATE TABLE extra (x int);"),
    ]

    async def replica() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            return len(await migrate(conn, "probe", migrations))
        finally:
            await conn.close()

    counts = await asyncio.gather(*(replica() for _ in range(4)))
    assert sorted(counts) == [0, 0, 0, len(migrations)]
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM probe.schema_migrations")
    finally:
        await conn.close()
    assert rows == len(migrations)


async def test_an_edited_migration_is_refused(database_url):
    conn = await asyncpg.connect(database_url)
    try:
        original = Migration("probe", 1, "create_things", "CREATE TABLE things (x int);")
        await migrate(conn, "probe", [original])
        edited = Migration("probe", 1, "create_things", "CREATE TABLE things (x bigint);")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, "probe", [edited])
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_nothing_half_applied(database_url):
    conn = await asyncpg.connect(database_url)
    try:
        broken = Migration("probe", 1, "broken", "CREATE TABLE half (x int); SELECT 1/0;")
        with pytest.raises(asyncpg.DivisionByZeroError):
            await migrate(conn, "probe", [broken])
        assert "half" not in await _tables(conn, "probe")
        assert await conn.fetchval("SELECT count(*) FROM probe.schema_migrations") == 0
    finally:
        await conn.close()
