"""Erased people, remembered only as keyed hashes.

A service that keeps personal data must never bring an erased person back, yet must not keep
their ids either. It stores HMAC-SHA256 digests of the erased subject keys ("lead:<id>",
"anon:<id>") under a secret of the tenant, and drops input whose keys match. Each service keeps
the two tables in its own schema, created by its migrations:

    tenant_secrets     (tenant_id text PRIMARY KEY, secret bytea NOT NULL, ...)
    erased_identifiers (tenant_id text, identifier_hash bytea, ..., PRIMARY KEY (both))
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from functools import lru_cache

import asyncpg


@lru_cache(maxsize=100_000)
def digest(secret: bytes, key: str) -> bytes:
    """The keyed hash of a subject key: enough to recognise an erased person, useless to
    anyone without the tenant's secret. Cached: every event of a batch is checked."""
    return hmac.new(secret, key.encode(), hashlib.sha256).digest()


async def erased_among(
    conn: asyncpg.Connection, tenant_id: str, hashes: Sequence[bytes]
) -> set[bytes]:
    """Which of the digests are recorded as erased."""
    if not hashes:
        return set()
    rows = await conn.fetch(
        "SELECT identifier_hash FROM erased_identifiers"
        " WHERE tenant_id = $1 AND identifier_hash = ANY($2::bytea[])",
        tenant_id,
        list(hashes),
    )
    return {bytes(r["identifier_hash"]) for r in rows}


class ErasedIdentifiers:
    """The tenant secrets of one service's schema (cached per process) and the lookups."""

    def __init__(self) -> None:
        self._secrets: dict[str, bytes] = {}

    async def secret(self, conn: asyncpg.Connection, tenant_id: str) -> bytes:
        """The tenant's secret, created on first use (racing creators agree on one).

        A secret this transaction created is not cached: a rollback would take it away, and
        every other process would hash with the one created after."""
        cached = self._secrets.get(tenant_id)
        if cached is not None:
            return cached
        await conn.execute(
            "INSERT INTO tenant_secrets (tenant_id, secret) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            tenant_id,
            secrets.token_bytes(32),
        )
        row = await conn.fetchrow(
            "SELECT secret, xmin::text IS DISTINCT FROM"
            " (pg_current_xact_id_if_assigned()::text::bigint % 4294967296)::text AS committed"
            " FROM tenant_secrets WHERE tenant_id = $1",
            tenant_id,
        )
        assert row is not None
        secret = bytes(row["secret"])
        if row["committed"]:
            self._secrets[tenant_id] = secret
        return secret

    async def digests(
        self, conn: asyncpg.Connection, tenant_id: str, keys: Iterable[str]
    ) -> dict[str, bytes]:
        secret = await self.secret(conn, tenant_id)
        return {key: digest(secret, key) for key in keys}

    async def erased(
        self, conn: asyncpg.Connection, tenant_id: str, keys: Iterable[str]
    ) -> set[str]:
        """Which of the subject keys belong to erased people."""
        hashes = await self.digests(conn, tenant_id, keys)
        found = await erased_among(conn, tenant_id, list(hashes.values()))
        return {key for key, value in hashes.items() if value in found}

    async def remember(self, conn: asyncpg.Connection, tenant_id: str, keys: Iterable[str]) -> None:
        """Record the subject keys as erased (in the caller's transaction)."""
        hashes = sorted((await self.digests(conn, tenant_id, keys)).values())
        await conn.execute(
            "INSERT INTO erased_identifiers (tenant_id, identifier_hash)"
            " SELECT $1, h FROM unnest($2::bytea[]) AS h ON CONFLICT DO NOTHING",
            tenant_id,
            hashes,
        )
