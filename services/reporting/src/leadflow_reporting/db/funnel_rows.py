"""The rows a funnel needs, fetched in one binary COPY and parsed with numpy.

One row per event in the funnel's range (subject, time, the bit mask of the steps and
exclusions it matches, its id). Rows come unsorted (numpy sorts them faster than
PostgreSQL); a binary COPY avoids building a Python object per row.
"""

from __future__ import annotations

import io
import struct
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np

from leadflow_reporting.db.selection import Literals, Params, breakdown_sql, selector_sql
from leadflow_reporting.domain.funnel import EXCLUSION_BIT, I64, Order, Rows
from leadflow_reporting.domain.query import FunnelQuery

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
# PostgreSQL counts timestamps in microseconds from 2000-01-01.
PG_EPOCH_US = 946_684_800_000_000
_FIELDS = [
    ("n", ">i2"),
    ("l1", ">i4"),
    ("subject", ">i4"),
    ("l2", ">i4"),
    ("time", ">i8"),
    ("l3", ">i4"),
    ("mask", ">i4"),
]
_ROW = np.dtype(_FIELDS)
# With the event id, which only a breakdown needs (it costs a third more bytes).
_ROW_WITH_ID = np.dtype([*_FIELDS, ("l4", ">i4"), ("id", ">i8")])
# The same with the event type (int2) in place of the mask (see type_masks).
_TYPED = [*_FIELDS[:-1], ("mask", ">i2")]
_TYPED_ROW = np.dtype(_TYPED)
_TYPED_ROW_WITH_ID = np.dtype([*_TYPED, ("l4", ">i4"), ("id", ">i8")])
EVENT_TYPES = 25  # leadflow.common.v1.EventType values 0..24


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


def funnel_sql(
    tenant_id: str, query: FunnelQuery, *, with_ids: bool = False
) -> tuple[str, list[object]]:
    p = Literals()
    where = [
        f"tenant_id = {p.add(tenant_id, 'text')}",
        "NOT machine",
        f"occurred_at >= {p.add(to_datetime(query.start_us), 'timestamptz')}",
        f"occurred_at < {p.add(to_datetime(query.end_us), 'timestamptz')}",
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
        sql = f"SELECT subject_id, occurred_at, event_type{ids} FROM events"
        return f"{sql} WHERE {' AND '.join(where)}", p.values
    mask = " | ".join(
        f"CASE WHEN {selector_sql(s, p)} THEN {1 << bit} ELSE 0 END" for bit, s in selectors
    )
    sql = f"SELECT subject_id, occurred_at, ({mask})::int4 AS mask{ids} FROM events"
    sql = f"{sql} WHERE {' AND '.join(where)}"
    if query.order is not Order.STRICT:
        sql = f"SELECT * FROM ({sql}) AS matched WHERE mask <> 0"
    return sql, p.values


def parse_copy(
    raw: bytes, *, with_ids: bool = False, masks: I64 | None = None
) -> tuple[Rows, I64 | None]:
    """(rows, event ids or None) from a binary COPY of (int4, timestamptz, int4[, int8])
    rows; with `masks`, the third column is the event type (int2) and its mask is read
    from them."""
    if not raw.startswith(_SIGNATURE):
        raise ValueError("not a binary COPY stream")
    (extension,) = struct.unpack_from(">i", raw, len(_SIGNATURE) + 4)
    body = raw[len(_SIGNATURE) + 8 + extension : -2]
    if masks is not None:
        dtype = _TYPED_ROW_WITH_ID if with_ids else _TYPED_ROW
    else:
        dtype = _ROW_WITH_ID if with_ids else _ROW
    data = np.frombuffer(body, dtype=dtype)
    if len(data) and not (data["n"] == (4 if with_ids else 3)).all():
        raise ValueError("unexpected column count in COPY stream")
    mask = data["mask"].astype(np.int64)
    if masks is not None:  # event types; any type without a selector matches nothing
        known = (mask >= 0) & (mask < len(masks))
        mask = np.where(known, masks[np.clip(mask, 0, len(masks) - 1)], 0)
    rows = Rows(
        data["subject"].astype(np.int64),
        data["time"].astype(np.int64) + PG_EPOCH_US,
        mask,
    )
    return rows, data["id"].astype(np.int64) if with_ids else None


async def fetch(
    conn: asyncpg.Connection, tenant_id: str, query: FunnelQuery, *, with_ids: bool = False
) -> tuple[Rows, I64 | None]:
    sql, args = funnel_sql(tenant_id, query, with_ids=with_ids)
    buffer = io.BytesIO()
    await conn.copy_from_query(sql, *args, output=buffer, format="binary")
    return parse_copy(buffer.getvalue(), with_ids=with_ids, masks=type_masks(query))


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
