"""Per-tenant state the use cases share: the tenant's policy and its hashing secret."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from leadflow_ingest.config import TENANT_DEFAULTS
from leadflow_ingest.domain.model import IpMode, TenantPolicy
from leadflow_platform.erased import ErasedIdentifiers, erased_among
from leadflow_platform.erased import digest as identifier_hash
from leadflow_platform.lifecycle import ServiceContext


class TenantState:
    def __init__(self, context: ServiceContext) -> None:
        self._context = context
        self._erased = ErasedIdentifiers()

    async def secret(self, conn: asyncpg.Connection, tenant_id: str) -> bytes:
        """The tenant's key for keyed hashes (erased ids, hashed IP addresses)."""
        return await self._erased.secret(conn, tenant_id)

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


async def erased_keys(
    conn: asyncpg.Connection, tenant_id: str, secret: bytes, keys: set[str]
) -> set[str]:
    """Which of the subject keys belong to erased people."""
    hashes = {key: identifier_hash(secret, key) for key in keys}
    erased = await erased_among(conn, tenant_id, list(hashes.values()))
    return {key for key, value in hashes.items() if value in erased}
