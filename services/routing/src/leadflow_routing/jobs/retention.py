"""Delete routing's history beyond its use or older than each tenant's retention (the
tenant setting `retention_days` that ingest and scoring read; default 365 days).

- lead events: only the last 30 days count (`lead.recent_event_counts`), so older rows are
  of no use (nor any row older than the retention, when it is shorter);
- decisions (the audit records), published outbox rows, and sink deliveries that are done
  (delivered or dead-lettered): older than the retention.

What a later decision depends on stays: configuration versions (stored decisions are
rebuilt from theirs), routes (the "never twice for the same reason" keys), brand turn state,
assignments and enrolments (loads, SLAs, nurture), pending deliveries and unpublished outbox
rows. One replica at a time runs the job (a session advisory lock); deletes go in slices.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from leadflow_platform.logging import get_logger
from leadflow_platform.tenancy.store import TenantDirectory
from leadflow_routing.db.repository import RETENTION_DELETES
from leadflow_routing.domain.snapshot import RECENT_EVENTS_WINDOW

log = get_logger(__name__)
LOCK_KEY = 0x1EADF10E_0006
SLICE = 10_000
DEFAULT_RETENTION_DAYS = 365


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
                retention = timedelta(
                    days=int(settings.get("retention_days", DEFAULT_RETENTION_DAYS))
                )
                counts = {}
                for table, sql in RETENTION_DELETES.items():
                    keep = (
                        min(retention, RECENT_EVENTS_WINDOW)
                        if table == "lead_events"
                        else retention
                    )
                    counts[table] = await _delete_all(conn, sql, tenant_id, now - keep)
                if any(counts.values()):
                    deleted[tenant_id] = counts
                    log.info(
                        "retention_deleted", tenant_id=tenant_id, days=retention.days, **counts
                    )
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
