"""Deleting what is older than each tenant's retention (`retention_days`, default 365).

A service names, per table, a DELETE of one slice of expired rows ($1 tenant id, $2 cutoff,
$3 slice size); this runs them for every tenant. One replica at a time runs the job (a
session advisory lock, per service); deletes go in slices so no lock is held for long.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from leadflow_platform.logging import get_logger
from leadflow_platform.tenancy.store import TenantDirectory

log = get_logger(__name__)
DEFAULT_RETENTION_DAYS = 365
SLICE = 10_000


@dataclass(frozen=True)
class Expiry:
    """One table's slice DELETE; `max_age` keeps rows no longer than that, whatever the
    tenant's retention (history that stops being of use earlier)."""

    sql: str
    max_age: timedelta | None = None


async def delete_expired(
    pool: asyncpg.Pool,
    directory: TenantDirectory,
    now: datetime,
    *,
    lock_key: int,
    tables: Mapping[str, str | Expiry],
    default_days: int = DEFAULT_RETENTION_DAYS,
) -> dict[str, dict[str, int]]:
    """Rows deleted per tenant and table; {} when another replica holds the job."""
    expiries = {t: e if isinstance(e, Expiry) else Expiry(e) for t, e in tables.items()}
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key):
            return {}
        try:
            deleted: dict[str, dict[str, int]] = {}
            for tenant_id in await directory.tenants():
                settings = await directory.settings(tenant_id)
                retention = timedelta(days=int(settings.get("retention_days", default_days)))
                counts = {}
                for table, expiry in expiries.items():
                    keep = min(retention, expiry.max_age) if expiry.max_age else retention
                    counts[table] = await _delete_all(conn, expiry.sql, tenant_id, now - keep)
                if any(counts.values()):
                    deleted[tenant_id] = counts
                    log.info(
                        "retention_deleted", tenant_id=tenant_id, days=retention.days, **counts
                    )
            return deleted
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", lock_key)


async def _delete_all(conn: asyncpg.Connection, sql: str, tenant_id: str, cutoff: datetime) -> int:
    total = 0
    while True:
        status = await conn.execute(sql, tenant_id, cutoff, SLICE)
        removed = int(status.split()[-1])
        total += removed
        if removed < SLICE:
            return total
