"""Delete scoring history older than each tenant's retention (default 365 days).

History goes: counted events (by when they happened), score history rows and published
outbox rows. A lead's features, current score and lifecycle are its current state, not
history: they stay until the person is erased (features keep counting events whose rows
are gone; only a half-life change, which rebuilds from history, forgets them).
(leadflow_platform.retention runs it: one replica at a time, in slices.)
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from leadflow_platform import retention
from leadflow_platform.tenancy.store import TenantDirectory
from leadflow_scoring.config import TENANT_DEFAULTS
from leadflow_scoring.db.repository import RETENTION_DELETES

LOCK_KEY = 0x1EADF10E_0004


async def delete_expired(
    pool: asyncpg.Pool, directory: TenantDirectory, now: datetime
) -> dict[str, dict[str, int]]:
    """Rows deleted per tenant and table; {} when another replica holds the job."""
    return await retention.delete_expired(
        pool,
        directory,
        now,
        lock_key=LOCK_KEY,
        tables=RETENTION_DELETES,
        default_days=int(TENANT_DEFAULTS["retention_days"]),
    )
