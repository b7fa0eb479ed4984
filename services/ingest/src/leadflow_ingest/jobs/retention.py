"""Delete what is older than each tenant's retention (default 365 days).

Time-series rows go: events (by when they happened), sessions and idle subject rows (by last
activity), and published outbox rows. Profiles, aliases and consent records are the current
state of a person, not history: they stay until the person is erased.
(leadflow_platform.retention runs it: one replica at a time, in slices.)
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from leadflow_ingest.config import TENANT_DEFAULTS
from leadflow_platform import retention
from leadflow_platform.tenancy.store import TenantDirectory

LOCK_KEY = 0x1EADF10E_0001

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
    """Rows deleted per tenant and table; {} when another replica holds the job."""
    return await retention.delete_expired(
        pool,
        directory,
        now,
        lock_key=LOCK_KEY,
        tables=_DELETES,
        default_days=int(TENANT_DEFAULTS["retention_days"]),
    )
