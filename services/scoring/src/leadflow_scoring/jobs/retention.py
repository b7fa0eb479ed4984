"""Delete scoring history older than each tenant's retention (default 365 days).

History goes: counted events (by when they happened), score history rows and published
outbox rows. A lead's features, current score and lifecycle are its current state, not
history: they stay until the person is erased (features keep counting events whose rows
are gone; only a half-life change, which rebuilds from history, forgets them). One replica
at a time runs the job (a session advisory lock); deletes go in slices.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from leadflow_platform.logging import get_logger
from leadflow_platform.tenancy.store import TenantDirectory
from leadflow_scoring.config import TENANT_DEFAULTS
from leadflow_scoring.db.repository import RETENTION_DELETES

log = get_logger(__name__)
LOCK_KEY = 0x1EADF10E_0004
SLICE = 10_000


async def delete_expired(
    pool: asyncpg.Pool, directory: TenantDirectory, now: datetime
) -> dict[str, dict[str, int]]:
    """Rows deleted per tenant and table; {} when another replica holds the job."""
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
            return {}
        try:
            deleted: dict[str, dict[str, int]] = {}
            for tenant_id in await directory.tenants():
                settings = await directory.settings(tenant_id)
                days = int(settings.get("retention_days", TENANT_DEFAULTS["retention_days"]))
                cutoff = now - timedelta(days=days)
                counts = {table: await _delete_all(conn, sql, tenant_id, cutoff)
                          for table, sql in RETENTION_DELETES.items()}  # fmt: skip
                if any(counts.values()):
                    deleted[tenant_id] = counts
                    log.info("retention_deleted", tenant_id=tenant_id, days=days, **counts)
            return deleted
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)


async def _delete_all(conn: asyncpg.Connection, sql: str, tenant_id: str, cutoff: datetime) -> int:
    total = 0
    while True:
        status = await conn.execute(sql, tenant_id, cutoff, SLICE)
        removed = int(status.split()[-1])
        total += removed
        if removed < SLICE:
            return total
