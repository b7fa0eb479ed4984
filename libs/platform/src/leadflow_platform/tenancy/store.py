"""The tenant directory in PostgreSQL (`tenancy` schema): create, list, revoke, verify keys."""

from __future__ import annotations

import hmac
import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from leadflow_platform.tenancy.keys import (
    NewKey,
    Principal,
    Scope,
    generate_key,
    hash_secret,
    parse_key,
    validate_tenant_id,
)

SCHEMA = "tenancy"


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    tenant_id: str
    scopes: frozenset[Scope]
    name: str
    created_at: datetime
    revoked_at: datetime | None


async def create_key(
    conn: asyncpg.Connection, tenant_id: str, scopes: frozenset[Scope], name: str = ""
) -> NewKey:
    """Create the tenant if it is new, then a key for it. The token is returned only here."""
    validate_tenant_id(tenant_id)
    key = generate_key()
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO tenancy.tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING",
            tenant_id,
        )
        await conn.execute(
            "INSERT INTO tenancy.api_keys (key_id, tenant_id, secret_sha256, scopes, name)"
            " VALUES ($1, $2, $3, $4, $5)",
            key.key_id,
            tenant_id,
            key.secret_sha256,
            sorted(s.value for s in scopes),
            name,
        )
    return key


async def revoke_key(conn: asyncpg.Connection, key_id: str) -> bool:
    status = await conn.execute(
        "UPDATE tenancy.api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL",
        key_id,
    )
    return status.endswith(" 1")


async def list_keys(conn: asyncpg.Connection, tenant_id: str | None = None) -> list[KeyInfo]:
    rows = await conn.fetch(
        "SELECT key_id, tenant_id, scopes, name, created_at, revoked_at FROM tenancy.api_keys"
        " WHERE $1::text IS NULL OR tenant_id = $1 ORDER BY tenant_id, created_at",
        tenant_id,
    )
    return [
        KeyInfo(
            r["key_id"],
            r["tenant_id"],
            frozenset(Scope(s) for s in r["scopes"]),
            r["name"],
            r["created_at"],
            r["revoked_at"],
        )
        for r in rows
    ]


class KeyStore:
    """Verifies API keys for the auth interceptor, caching answers for `cache_seconds`.

    The cache keeps the database off the hot path; its lifetime bounds how long a revoked
    key keeps working (`LEADFLOW_AUTH_CACHE_SECONDS`). Unknown keys are cached too, so a
    flood of bad keys costs one query per key per period.
    """

    def __init__(self, pool: asyncpg.Pool, *, cache_seconds: float = 5.0) -> None:
        self._pool = pool
        self._ttl = cache_seconds
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def authenticate(self, token: str) -> Principal | None:
        now = time.monotonic()
        cached = self._cache.get(token)
        if cached is not None and cached[0] > now:
            return cached[1]
        principal = await self._lookup(token)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[token] = (now + self._ttl, principal)
        return principal

    async def _lookup(self, token: str) -> Principal | None:
        parsed = parse_key(token)
        if parsed is None:
            return None
        key_id, secret = parsed
        row = await self._pool.fetchrow(
            "SELECT tenant_id, secret_sha256, scopes FROM tenancy.api_keys"
            " WHERE key_id = $1 AND revoked_at IS NULL",
            key_id,
        )
        if row is None or not hmac.compare_digest(bytes(row["secret_sha256"]), hash_secret(secret)):
            return None
        return Principal(row["tenant_id"], key_id, frozenset(Scope(s) for s in row["scopes"]))


class TenantDirectory:
    """Per-tenant settings (`tenancy.tenants.settings`), cached for `cache_seconds`.

    DESIGN.md's defaults are "each configurable per tenant": retention, consent, IP handling,
    rate limits... Each service reads the keys it knows; an unknown tenant has no settings.
    """

    def __init__(self, pool: asyncpg.Pool, *, cache_seconds: float = 30.0) -> None:
        self._pool = pool
        self._ttl = cache_seconds
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    async def settings(self, tenant_id: str) -> dict[str, Any]:
        now = time.monotonic()
        cached = self._cache.get(tenant_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await self._pool.fetchval(
            "SELECT settings::text FROM tenancy.tenants WHERE tenant_id = $1", tenant_id
        )
        settings = json.loads(found) if found else {}
        self._cache[tenant_id] = (now + self._ttl, settings)
        return settings

    async def tenants(self) -> list[str]:
        rows = await self._pool.fetch("SELECT tenant_id FROM tenancy.tenants ORDER BY tenant_id")
        return [r["tenant_id"] for r in rows]


async def update_tenant_settings(
    conn: asyncpg.Connection, tenant_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Merge `changes` into the tenant's settings (a None value removes a key)."""
    validate_tenant_id(tenant_id)
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO tenancy.tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING",
            tenant_id,
        )
        # Text in and out, so this works on any connection, whatever its jsonb codec.
        current = await conn.fetchval(
            "SELECT settings::text FROM tenancy.tenants WHERE tenant_id = $1 FOR UPDATE",
            tenant_id,
        )
        merged = {
            k: v for k, v in {**json.loads(current or "{}"), **changes}.items() if v is not None
        }
        await conn.execute(
            "UPDATE tenancy.tenants SET settings = $2::text::jsonb WHERE tenant_id = $1",
            tenant_id,
            json.dumps(merged),
        )
    return merged
