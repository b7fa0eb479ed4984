"""Deleting what reporting keeps only for a while: real-time rollup buckets older than the
rollup retention (LEADFLOW_REPORTING_ROLLUP_RETENTION_DAYS, 90 by default), raised alerts
and published outbox rows older than the alert retention
(LEADFLOW_REPORTING_ALERT_RETENTION_DAYS, 365), neither kept longer than the tenant's
`retention_days` (365 by default). Pruned every LEADFLOW_REPORTING_RETENTION_INTERVAL_SECONDS;
leadflow_platform.retention runs it: one replica at a time, in slices."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from leadflow_platform import retention
from leadflow_platform.tenancy.store import TenantDirectory
from leadflow_reporting.config import ReportingSettings
from leadflow_reporting.db import alerts, rollups

LOCK_KEY = 0x1EADF10E_0007
OUTBOX_DELETE = (
    "DELETE FROM outbox WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM outbox WHERE tenant_id = $1 AND published_at < $2 LIMIT $3))"
)


async def delete_expired(
    pool: asyncpg.Pool, directory: TenantDirectory, now: datetime, settings: ReportingSettings
) -> dict[str, dict[str, int]]:
    """Rows deleted per tenant and table; {} when another replica holds the job."""
    rollup_age = timedelta(days=settings.rollup_retention_days)
    alert_age = timedelta(days=settings.alert_retention_days)
    tables = {t: retention.Expiry(s, rollup_age) for t, s in rollups.RETENTION_DELETES.items()}
    tables.update({t: retention.Expiry(s, alert_age) for t, s in alerts.RETENTION_DELETES.items()})
    tables["outbox"] = retention.Expiry(OUTBOX_DELETE, alert_age)
    return await retention.delete_expired(pool, directory, now, lock_key=LOCK_KEY, tables=tables)
