"""Delete what is older than each tenant's retention (default 365 days).

Time-series rows go: events (by when they happened), sessions and idle subject rows (by last
activity), and published outbox rows. Profiles, aliases and consent records are the current
state of a person, not history: they stay until the person is erased. One replica at a time
runs the job (a session advisory lock); deletes go in slices so no lock is held for long.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from leadflow_ingest.config import TENANT_DEFAULTS
from leadflow_platform.logging import get_logger
from leadflow_platform.tenancy.store import TenantDirectory

log = get_logger(__name__)
LOCK_KEY = 0x1EADF10E_0001
SLICE = 10_000

_DELETES = {
    "events": "DELETE FROM events WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM events WHERE tenant_id = $1 AND occurred_at < $2 LIMIT $3))",
    "sessions": "DELETE FROM sessions WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM sessions WHERE tenant_id = $1 AND last_seen_at < $2 LIMIT $3))",
    "subjects": "DELETE FROM subjects WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM subjects WHERE tenant_id = $1"
    " AND coalesce(session_last_seen_at, '-infinity') < $2"
    " AND coalesce(last_email_sent_at, '-infinity') < $2 LIMIT $3))",
    "outbox": "DELETE FROM outbox WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM outbox WHERE tenant_id = $1 AND published_at < $2 LIMIT $3))",
}


async def delete_expired(
    pool: asyncpg.Pool, directory: TenantDirectory, now: datetime
) -> dict[str, dict[str, int]]:
    """Returns rows deleted per tenant and table; {} when another replica holds the job."""
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
                          for table, sql in _DELETES.items()}  # fmt: skip
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
