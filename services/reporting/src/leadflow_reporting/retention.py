"""The retention report: one fetch of the cohort, returning and conversion events up to
now, then the table computed in numpy; valued conversions read apart for revenue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from leadflow_platform.lifecycle import ServiceContext
from leadflow_reporting.db import report_rows
from leadflow_reporting.domain.retention import RetentionQuery, RetentionTable, boundaries, table


def _datetime(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


class Retention:
    def __init__(self, context: ServiceContext) -> None:
        self._context = context

    async def run(self, tenant_id: str, query: RetentionQuery, now_us: int) -> RetentionTable:
        bounds = boundaries(
            query.start_us,
            query.end_us,
            query.periods + 1,
            query.period,
            ZoneInfo(query.time_zone),
        )
        cohorts = len(bounds) - query.periods - 1
        now = _datetime(now_us)
        async with (
            self._context.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            await report_rows.prefer_covering_index(conn)
            subject, time_us, flags, valued = await report_rows.retention_rows(
                conn, tenant_id, now, query, self._context.pool
            )
        return table(
            subject,
            time_us,
            flags,
            bounds,
            cohorts,
            query.periods,
            now_us,
            recurring=query.recurring,
            valued=valued,
        )
