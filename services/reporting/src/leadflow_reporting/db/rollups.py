"""Reading the real-time rollups (written with the events, see repository.insert_events).
Each read sums one rollup level's rows inside the window; bucket starts come back as
microseconds since the Unix epoch."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import asyncpg

from leadflow_reporting.db.repository import ACTIVE_WINDOW, ROLLUP_LEVELS
from leadflow_reporting.db.selection import CUSTOM, Params
from leadflow_reporting.domain.query import RealTimeQuery

_US = "(extract(epoch FROM bucket_start) * 1000000)::int8"


def _where(p: Params, tenant_id: str, level: int, start: datetime, end: datetime) -> list[str]:
    return [
        f"tenant_id = {p.add(tenant_id, 'text')}",
        f"level = {p.add(level, 'int2')}",
        f"bucket_start >= {p.add(start, 'timestamptz')}",
        f"bucket_start < {p.add(end, 'timestamptz')}",
    ]


def _brands(p: Params, brand_ids: Sequence[str]) -> list[str]:
    return [f"brand_id = ANY({p.add(list(brand_ids), 'text[]')})"] if brand_ids else []


async def counts(
    conn: asyncpg.Connection,
    tenant_id: str,
    level: int,
    start: datetime,
    end: datetime,
    query: RealTimeQuery,
) -> list[tuple[int, int, str, int]]:
    """(bucket start, event type, custom name, events)."""
    p = Params()
    where = _where(p, tenant_id, level, start, end) + _brands(p, query.brand_ids)
    custom = f"event_type = {CUSTOM}"
    if query.custom_names:
        custom = f"({custom} AND custom_name = ANY({p.add(list(query.custom_names), 'text[]')}))"
    if query.event_types:
        standard = [t for t in query.event_types if t != CUSTOM]
        kinds = [f"event_type = ANY({p.add(standard, 'int2[]')})"] if standard else []
        if CUSTOM in query.event_types:
            kinds.append(custom)
        where.append(f"({' OR '.join(kinds) or 'false'})")
    elif query.custom_names:
        where.append(f"(event_type <> {CUSTOM} OR {custom})")
    rows = await conn.fetch(
        f"SELECT {_US} AS t, event_type, custom_name, sum(events)::int8 AS n FROM rollup_counts"
        f" WHERE {' AND '.join(where)} GROUP BY 1, 2, 3",
        *p.values,
    )
    return [(r["t"], r["event_type"], r["custom_name"], r["n"]) for r in rows]


async def _summed(
    conn: asyncpg.Connection,
    tenant_id: str,
    window: tuple[int, datetime, datetime],
    brand_ids: Sequence[str],
    table: str,
    columns: str,
    groups: str,
) -> list[asyncpg.Record]:
    """`columns` of the rollup `table` at a level over [start, end), grouped by `groups`."""
    level, start, end = window
    p = Params()
    where = _where(p, tenant_id, level, start, end) + _brands(p, brand_ids)
    return await conn.fetch(
        f"SELECT {columns} FROM {table} WHERE {' AND '.join(where)} GROUP BY {groups}",
        *p.values,
    )


async def conversions(
    conn: asyncpg.Connection,
    tenant_id: str,
    window: tuple[int, datetime, datetime],
    brand_ids: Sequence[str],
) -> list[tuple[int, str, int, Decimal]]:
    """(bucket start, currency, conversions, summed value) per bucket of (level, start, end)."""
    columns = f"{_US} AS t, currency_code, sum(conversions)::int8 AS n, sum(value) AS v"
    rows = await _summed(conn, tenant_id, window, brand_ids, "rollup_conversions", columns, "1, 2")
    return [(r["t"], r["currency_code"], r["n"], r["v"]) for r in rows]


async def latency(
    conn: asyncpg.Connection,
    tenant_id: str,
    window: tuple[int, datetime, datetime],
    brand_ids: Sequence[str],
) -> list[tuple[str, int, int, int]]:
    """(endpoint, histogram bin, samples, errors) over (level, start, end)."""
    columns = "endpoint, bin, sum(samples)::int8 AS n, sum(errors)::int8 AS e"
    rows = await _summed(conn, tenant_id, window, brand_ids, "rollup_latency", columns, "1, 2")
    return [(r["endpoint"], r["bin"], r["n"], r["e"]) for r in rows]


async def active(
    conn: asyncpg.Connection, tenant_id: str, as_of: datetime, brand_ids: Sequence[str]
) -> tuple[int, int]:
    """(sessions, subjects) with an event in the activity window before as_of."""
    p = Params()
    p.add(tenant_id, "text")
    at = p.add(as_of, "timestamptz")
    where = [
        "tenant_id = $1",
        f"last_seen > {at} - interval '{ACTIVE_WINDOW}'",
        f"last_seen <= {at}",
        *_brands(p, brand_ids),
    ]
    row = await conn.fetchrow(
        "SELECT count(DISTINCT session_id) AS sessions, count(DISTINCT subject_id) AS subjects"
        f" FROM recent_sessions WHERE {' AND '.join(where)}",
        *p.values,
    )
    assert row is not None
    return row["sessions"], row["subjects"]


RETENTION_DELETES = {
    table: f"DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table}"
    f" WHERE tenant_id = $1 AND level = ANY('{{{','.join(map(str, ROLLUP_LEVELS))}}}'::int2[])"
    " AND bucket_start < $2 LIMIT $3))"
    for table in ("rollup_counts", "rollup_conversions", "rollup_latency")
}
"""Statements ($1 tenant, $2 cutoff, $3 slice size) deleting one slice of rollup buckets
that started before the cutoff (each level is its own stretch of the primary key)."""
