"""Per-tenant state the use cases share: the tenant's policy and its hashing secret."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from functools import lru_cache

import asyncpg

from leadflow_ingest.config import TENANT_DEFAULTS
from leadflow_ingest.db import repository as repo
from leadflow_ingest.domain.model import IpMode, TenantPolicy
from leadflow_platform.lifecycle import ServiceContext


class TenantState:
    def __init__(self, context: ServiceContext) -> None:
        self._context = context
        self._secrets: dict[str, bytes] = {}

    async def secret(self, conn: asyncpg.Connection, tenant_id: str) -> bytes:
        """The tenant's key for keyed hashes (created on first use, then cached)."""
        secret = self._secrets.get(tenant_id)
        if secret is None:
            secret = self._secrets[tenant_id] = await repo.tenant_secret(conn, tenant_id)
        return secret

    async def policy(self, tenant_id: str) -> TenantPolicy:
        """DESIGN.md's defaults, overridden by the tenant's settings."""
        settings = {**TENANT_DEFAULTS, **await self._context.tenants.settings(tenant_id)}
        ip_mode: IpMode = "hash" if settings["ip_mode"] == "hash" else "truncate"
        key = None
        if ip_mode == "hash":
            async with self._context.pool.acquire() as conn:
                key = await self.secret(conn, tenant_id)
        return TenantPolicy(
            retention_days=int(settings["retention_days"]),
            require_consent=bool(settings["require_consent"]),
            ip_mode=ip_mode,
            ip_hash_key=key,
            session_timeout=timedelta(minutes=30),
        )


@lru_cache(maxsize=100_000)
def identifier_hash(secret: bytes, key: str) -> bytes:
    """Keyed hash of an identifier ("lead:<id>", "anon:<id>"): the only trace of an erased
    person, enough to recognise them, useless to anyone without the tenant's secret.
    Cached: every event of a batch is checked against erasures."""
    return hmac.new(secret, key.encode(), hashlib.sha256).digest()


async def erased_keys(
    conn: asyncpg.Connection, tenant_id: str, secret: bytes, keys: set[str]
) -> set[str]:
    """Which of the subject keys belong to erased people."""
    hashes = {key: identifier_hash(secret, key) for key in keys}
    erased = await repo.erased_among(conn, tenant_id, list(hashes.values()))
    return {key for key, digest in hashes.items() if digest in erased}
