"""Delete attribution rows older than each tenant's retention (default 365 days):
touchpoints and stage changes by when they happened, conversions (with their credits) by
when they converted, published outbox rows, and cached fits of ranges no one asked for in a
day. One replica at a time (advisory lock)."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from leadflow_attribution.db import fits
from leadflow_attribution.domain.policy import tenant_policy
from leadflow_platform.logging import get_logger
from leadflow_platform.tenancy.store import TenantDirectory

log = get_logger(__name__)
LOCK_KEY = 0x1EADF10E_0005
UNUSED_FIT = timedelta(days=1)
DELETES = {
    "credits": "DELETE FROM credits k USING conversions c WHERE k.tenant_id = $1"
    " AND c.tenant_id = $1 AND c.conversion_id = k.conversion_id AND c.occurred_at < $2",
    "conversions": "DELETE FROM conversions WHERE tenant_id = $1 AND occurred_at < $2",
    "touchpoints": "DELETE FROM touchpoints WHERE tenant_id = $1 AND occurred_at < $2",
    "stage_changes": "DELETE FROM stage_changes WHERE tenant_id = $1 AND occurred_at < $2",
    "outbox": "DELETE FROM outbox WHERE tenant_id = $1 AND published_at < $2",
}


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
                policy, _ = tenant_policy(await directory.settings(tenant_id))
                cutoff = now - policy.retention
                counts: dict[str, int] = {}
                async with conn.transaction():
                    for table, sql in DELETES.items():
                        status = await conn.execute(sql, tenant_id, cutoff)
                        counts[table] = int(status.split()[-1])
                    if counts["conversions"] or counts["touchpoints"]:
                        await conn.execute(
                            "UPDATE tenant_generations SET generation = generation + 1"
                            " WHERE tenant_id = $1",
                            tenant_id,
                        )
                # Fits of ad hoc ranges nobody asked for in a day go; rolling ones stay.
                counts["fits"] = await fits.forget_unused(conn, tenant_id, now - UNUSED_FIT)
                if any(counts.values()):
                    deleted[tenant_id] = counts
                    log.info("retention_deleted", tenant_id=tenant_id, **counts)
            return deleted
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
