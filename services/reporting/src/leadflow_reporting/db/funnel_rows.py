"""The rows a funnel needs, fetched packed in time slices (see row_slices) and read with numpy.

One row per event in the funnel's range: the subject and the bit mask of the steps and
exclusions it matches (or its event type, see type_masks) packed in one int8, the time, and
the event id when a breakdown needs it. Rows come unsorted (numpy sorts them faster than
PostgreSQL), and no Python object is built per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np

from leadflow_reporting.db.row_slices import (
    fetch_packed,
    fetch_slices,
    packed_sql,
    parse_packed,
    time_slices,
)
from leadflow_reporting.db.selection import Literals, Params, breakdown_sql, selector_sql
from leadflow_reporting.domain.funnel import EXCLUSION_BIT, I64, Order, Rows
from leadflow_reporting.domain.query import FunnelQuery

# PostgreSQL counts timestamps in microseconds from 2000-01-01.
PG_EPOCH_US = 946_684_800_000_000
EVENT_TYPES = 25  # leadflow.common.v1.EventType values 0..24
_LOW32 = (1 << 32) - 1


def type_masks(query: FunnelQuery) -> I64 | None:
    """When every step and exclusion is a standard event type without filters, the mask of
    each event type (indexed by type): the rows then carry their type and the mask is looked
    up here, which spares PostgreSQL a CASE per row. None otherwise."""
    selectors = [(k, s) for k, s in enumerate(query.steps)]
    selectors += [(EXCLUSION_BIT + j, s) for j, (s, _, _) in enumerate(query.exclusions)]
    if any(s.filters or s.custom_name or not 0 < s.event_type < EVENT_TYPES for _, s in selectors):
        return None
    lut = np.zeros(EVENT_TYPES, dtype=np.int64)
    for bit, s in selectors:
        lut[s.event_type] |= 1 << bit
    return lut


def to_datetime(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def funnel_rows_sql(
    tenant_id: str, query: FunnelQuery, lo: str, hi: str, *, with_ids: bool = False
) -> str:
    """The rows with a time in [lo, hi) (SQL expressions): (subject << 32 | type or mask,
    time[, id])."""
    p = Literals()
    where = [
        f"tenant_id = {p.add(tenant_id, 'text')}",
        "NOT machine",
        f"occurred_at >= {lo}",
        f"occurred_at < {hi}",
    ]
    if query.brand_ids:
        where.append(f"brand_id = ANY({p.add(list(query.brand_ids), 'text[]')})")
    selectors = [(k, s) for k, s in enumerate(query.steps)]
    selectors += [(EXCLUSION_BIT + j, s) for j, (s, _, _) in enumerate(query.exclusions)]
    if query.order is not Order.STRICT:
        # Only the step and exclusion types, so the index serves the read.
        types = sorted({int(s.event_type) for _, s in selectors})
        where.append(f"event_type = ANY({p.add(types, 'int2[]')})")
    ids = ", id" if with_ids else ""
    if type_masks(query) is not None:
        sql = f"SELECT (subject_id::int8 << 32) | event_type, occurred_at{ids} FROM events"
        return f"{sql} WHERE {' AND '.join(where)}"
    mask = " | ".join(
        f"CASE WHEN {selector_sql(s, p)} THEN {1 << bit} ELSE 0 END" for bit, s in selectors
    )
    sql = f"SELECT subject_id, occurred_at, ({mask})::int4 AS mask{ids} FROM events"
    sql = f"{sql} WHERE {' AND '.join(where)}"
    keep = " WHERE mask <> 0" if query.order is not Order.STRICT else ""
    return f"SELECT (subject_id::int8 << 32) | mask, occurred_at{ids} FROM ({sql}) AS matched{keep}"


def _kinds(with_ids: bool) -> list[str]:
    return ["int8", "timestamptz", "int8"] if with_ids else ["int8", "timestamptz"]


def funnel_sql(
    tenant_id: str,
    query: FunnelQuery,
    *,
    with_ids: bool = False,
    lo_us: int | None = None,
    hi_us: int | None = None,
) -> str:
    """The packed rows (see row_slices) of [lo, hi) (default: the funnel's range)."""
    return packed_sql(
        lambda lo, hi: funnel_rows_sql(tenant_id, query, lo, hi, with_ids=with_ids),
        _kinds(with_ids),
        query.start_us if lo_us is None else lo_us,
        query.end_us if hi_us is None else hi_us,
    )


def parse_rows(
    values: Sequence[bytes], *, with_ids: bool = False, masks: I64 | None = None
) -> tuple[Rows, I64 | None]:
    """(rows, event ids or None) from packed (int8 subject << 32 | mask, timestamptz[, int8
    id]) rows; with `masks`, the low half is the event type and its mask is read from
    them."""
    packed, time, *rest = parse_packed(values, _kinds(with_ids))
    mask = packed & _LOW32
    if masks is not None:  # event types; any type without a selector matches nothing
        mask = np.where(mask < len(masks), masks[np.minimum(mask, len(masks) - 1)], 0)
    rows = Rows(packed >> 32, time + PG_EPOCH_US, mask)
    return rows, rest[0] if with_ids else None


async def fetch(
    conn: asyncpg.Connection,
    tenant_id: str,
    query: FunnelQuery,
    *,
    with_ids: bool = False,
    pool: asyncpg.Pool | None = None,
) -> tuple[Rows, I64 | None]:
    """The funnel's rows; with a pool, its time slices read at the same time (see
    row_slices) in the snapshot of conn's REPEATABLE READ transaction."""
    if pool is None:
        values = await fetch_packed(conn, funnel_sql(tenant_id, query, with_ids=with_ids))
    else:
        sqls = [
            funnel_sql(tenant_id, query, with_ids=with_ids, lo_us=lo, hi_us=hi)
            for lo, hi in time_slices(query.start_us, query.end_us)
        ]
        values = [v for part in await fetch_slices(pool, conn, sqls) for v in part]
    return parse_rows(values, with_ids=with_ids, masks=type_masks(query))


async def breakdown_values(
    conn: asyncpg.Connection, tenant_id: str, query: FunnelQuery, event_ids: I64
) -> dict[int, str]:
    """The breakdown value (text, '' when not set) of each of these events."""
    assert query.breakdown is not None
    p = Params()
    p.add(tenant_id, "text")
    ids = p.add(np.unique(event_ids).tolist(), "int8[]")
    value = breakdown_sql(query.breakdown, p)
    rows = await conn.fetch(
        f"SELECT id, {value} AS value FROM events WHERE tenant_id = $1 AND id = ANY({ids})",
        *p.values,
    )
    return {r["id"]: r["value"] for r in rows}
