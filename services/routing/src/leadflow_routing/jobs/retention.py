"""Delete routing's history beyond its use or older than each tenant's retention (the
tenant setting `retention_days` that ingest and scoring read; default 365 days).

- lead events: only the last 30 days count (`lead.recent_event_counts`), so older rows are
  of no use (nor any row older than the retention, when it is shorter);
- decisions (the audit records), published outbox rows, and sink deliveries that are done
  (delivered or dead-lettered): older than the retention.

What a later decision depends on stays: configuration versions (stored decisions are
rebuilt from theirs), routes (the "never twice for the same reason" keys), brand turn state,
assignments and enrolments (loads, SLAs, nurture), pending deliveries and unpublished outbox
rows.
(leadflow_platform.retention runs it: one replica at a time, in slices.)
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from leadflow_platform import retention
from leadflow_platform.tenancy.store import TenantDirectory
from leadflow_routing.db.repository import RETENTION_DELETES
from leadflow_routing.domain.snapshot import RECENT_EVENTS_WINDOW

LOCK_KEY = 0x1EADF10E_0006


async def delete_expired(
    pool: asyncpg.Pool, directory: TenantDirectory, now: datetime
) -> dict[str, dict[str, int]]:
    """Rows deleted per tenant and table; {} when another replica holds the job."""
    tables = {
        table: retention.Expiry(sql, RECENT_EVENTS_WINDOW if table == "lead_events" else None)
        for table, sql in RETENTION_DELETES.items()
    }
    return await retention.delete_expired(pool, directory, now, lock_key=LOCK_KEY, tables=tables)
