"""Erased identifiers: the tenant secret survives only when committed; erased keys are found."""

from __future__ import annotations

import asyncpg
import pytest

from leadflow_platform.erased import ErasedIdentifiers, digest

pytestmark = pytest.mark.integration

TABLES = """
CREATE TABLE tenant_secrets (tenant_id text PRIMARY KEY, secret bytea NOT NULL);
CREATE TABLE erased_identifiers (
    tenant_id text NOT NULL, identifier_hash bytea NOT NULL,
    PRIMARY KEY (tenant_id, identifier_hash));
"""


async def test_a_secret_created_by_a_rolled_back_transaction_is_not_kept(database_url):
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(TABLES)
        erased = ErasedIdentifiers()
        tx = conn.transaction()
        await tx.start()
        lost = await erased.secret(conn, "acme")
        await tx.rollback()

        other = await asyncpg.connect(database_url)
        try:  # another replica creates the secret everyone will use
            kept = await ErasedIdentifiers().secret(other, "acme")
        finally:
            await other.close()

        assert lost != kept
        async with conn.transaction():
            assert await erased.secret(conn, "acme") == kept
        # committed now: cached, answered without touching the table
        await conn.execute("DELETE FROM tenant_secrets")
        async with conn.transaction():
            assert await erased.secret(conn, "acme") == kept
    finally:
        await conn.close()


async def test_remembered_keys_are_found_and_stored_only_as_keyed_hashes(database_url):
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(TABLES)
        erased = ErasedIdentifiers()
        async with conn.transaction():
            await erased.remember(conn, "acme", ["lead:ada", "anon:v1"])
            await erased.remember(conn, "acme", ["lead:ada"])  # again: no error, no copy
        found = await erased.erased(conn, "acme", ["lead:ada", "anon:v1", "lead:bob"])
        assert found == {"lead:ada", "anon:v1"}
        assert await erased.erased(conn, "globex", ["lead:ada"]) == set()
        stored = {
            bytes(r[0]) for r in await conn.fetch("SELECT identifier_hash FROM erased_identifiers")
        }
        secret = await erased.secret(conn, "acme")
        assert stored == {digest(secret, "lead:ada"), digest(secret, "anon:v1")}
        assert all(b"ada" not in h for h in stored)
    finally:
        await conn.close()
