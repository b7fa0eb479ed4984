"""The rows paths and retention need, each fetched in one binary COPY and parsed with numpy
(as the funnel's, see funnel_rows.py)."""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from datetime import datetime

import asyncpg
import numpy as np

from leadflow_reporting.db.funnel_rows import PG_EPOCH_US, to_datetime
from leadflow_reporting.db.selection import Literals, Params, selector_sql
from leadflow_reporting.domain.funnel import I64
from leadflow_reporting.domain.paths import ANCHOR, EXCLUDED, INCLUDED, PAGE_VIEW, PathsQuery
from leadflow_reporting.domain.query import Selector
from leadflow_reporting.domain.retention import (
    COHORT,
    CONVERSION,
    RETURNING,
    RetentionQuery,
    Valued,
)

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
PAGE_VIEW_TYPE = 1
CONVERSION_TYPES = (18, 19)
DAY_US = 86_400_000_000
# Sessions are read this far beyond the range, so that one starting just before it is
# not taken for one starting in it, and one starting at its end is followed to its end.
SESSION_MARGIN_US = DAY_US


async def prefer_covering_index(conn: asyncpg.Connection) -> None:
    """For the rest of the transaction, read through the covering indexes: when one tenant
    owns most rows the planner would scan the whole table, three times the bytes of the
    index (events_for_reports)."""
    await conn.execute("SET LOCAL enable_seqscan = off")


def parse(raw: bytes, columns: Sequence[str]) -> dict[str, I64]:
    """Columns of a binary COPY of fixed-width int4 / int8 / timestamptz fields, by name;
    `columns` gives each field's numpy type (">i4" or ">i8"; timestamps as ">i8", returned
    as microseconds since the Unix epoch when named "time")."""
    if not raw.startswith(_SIGNATURE):
        raise ValueError("not a binary COPY stream")
    (extension,) = struct.unpack_from(">i", raw, len(_SIGNATURE) + 4)
    body = raw[len(_SIGNATURE) + 8 + extension : -2]
    fields: list[tuple[str, str]] = [("n", ">i2")]
    for i, kind in enumerate(columns):
        fields += [(f"l{i}", ">i4"), (f"f{i}", kind)]
    data = np.frombuffer(body, dtype=np.dtype(fields))
    if len(data) and not (data["n"] == len(columns)).all():
        raise ValueError("unexpected column count in COPY stream")
    return {f"f{i}": data[f"f{i}"].astype(np.int64) for i in range(len(columns))}


async def _copy(conn: asyncpg.Connection, sql: str, args: Sequence[object]) -> bytes:
    buffer = io.BytesIO()
    await conn.copy_from_query(sql, *args, output=buffer, format="binary")
    return buffer.getvalue()


def _base(
    p: Params, tenant_id: str, lo: datetime | None, hi: datetime, brands: Sequence[str]
) -> list[str]:
    where = [f"tenant_id = {p.add(tenant_id, 'text')}", "NOT machine"]
    if lo is not None:
        where.append(f"occurred_at >= {p.add(lo, 'timestamptz')}")
    where.append(f"occurred_at < {p.add(hi, 'timestamptz')}")
    if brands:
        where.append(f"brand_id = ANY({p.add(list(brands), 'text[]')})")
    return where


def _any(selectors: Sequence[Selector], p: Params) -> str:
    return "(" + " OR ".join(selector_sql(s, p) for s in selectors) + ")"


def paths_sql(tenant_id: str, query: PathsQuery) -> tuple[str, list[object], bool]:
    """Rows of subject, session key, time, path item and, when the query has selectors, the
    ANCHOR / INCLUDED / EXCLUDED flags (the third value says whether they are fetched)."""
    p = Literals()
    where = _base(
        p,
        tenant_id,
        to_datetime(query.start_us - SESSION_MARGIN_US),
        to_datetime(query.end_us + SESSION_MARGIN_US),
        query.brand_ids,
    )
    flags = []
    if query.anchor is not None:
        flags.append(f"CASE WHEN {selector_sql(query.anchor, p)} THEN {ANCHOR} ELSE 0 END")
    if query.include:
        flags.append(f"CASE WHEN {_any(query.include, p)} THEN {INCLUDED} ELSE 0 END")
    else:
        flags.append(str(INCLUDED))
    if query.exclude:
        flags.append(f"CASE WHEN {_any(query.exclude, p)} THEN {EXCLUDED} ELSE 0 END")
    with_flags = len(flags) > 1 or bool(query.include)
    selected = f", ({' | '.join(flags)})::int4" if with_flags else ""
    sql = (
        f"SELECT subject_id, session_key, occurred_at, path_item{selected}"
        f" FROM events WHERE {' AND '.join(where)}"
    )
    return sql, p.values, with_flags


async def paths_rows(conn: asyncpg.Connection, tenant_id: str, query: PathsQuery) -> dict[str, I64]:
    """subject, session_key, time, item, flags of the events around the range."""
    sql, args, with_flags = paths_sql(tenant_id, query)
    kinds = [">i4", ">i8", ">i8", ">i4"] + ([">i4"] if with_flags else [])
    cols = parse(await _copy(conn, sql, args), kinds)
    item = cols["f3"]
    flags = cols["f4"] if with_flags else np.full(len(item), INCLUDED, dtype=np.int64)
    flags |= np.where((item > 0) | (item == -PAGE_VIEW_TYPE), PAGE_VIEW, 0)
    return {
        "subject": cols["f0"],
        "session_key": cols["f1"],
        "time": cols["f2"] + PG_EPOCH_US,
        "item": item,
        "flags": flags,
    }


EVENT_TYPES = 25  # leadflow.common.v1.EventType values 0..24


def retention_masks(query: RetentionQuery) -> I64 | None:
    """When the cohort, returning and conversion events are standard types without filters
    (or unset), the flags of each event type (indexed by type): rows then carry their type,
    sparing PostgreSQL a CASE per row. None otherwise."""
    chosen = (
        (COHORT, query.cohort_event),
        (RETURNING, query.returning_event),
        (CONVERSION, query.conversion_event),
    )
    lut = np.zeros(EVENT_TYPES, dtype=np.int64)
    for bit, selector in chosen:
        if selector is None:
            types: Sequence[int] = range(EVENT_TYPES) if bit != CONVERSION else CONVERSION_TYPES
        elif selector.filters or selector.custom_name or not 0 < selector.event_type < EVENT_TYPES:
            return None
        else:
            types = [selector.event_type]
        for t in types:
            lut[t] |= bit
    return lut


def retention_sql(tenant_id: str, now: datetime, query: RetentionQuery) -> tuple[str, list[object]]:
    cohort, returning, conversion = (
        query.cohort_event,
        query.returning_event,
        query.conversion_event,
    )
    p = Literals()
    where = _base(p, tenant_id, None, now, query.brand_ids)
    if retention_masks(query) is not None:
        if cohort and returning:
            types = sorted({s.event_type for s in (cohort, returning, conversion) if s})
            types = sorted({*types, *(CONVERSION_TYPES if conversion is None else ())})
            where.append(f"event_type = ANY({p.add(types, 'int2[]')})")
        sql = "SELECT subject_id, occurred_at, event_type::int4 FROM events"
        return f"{sql} WHERE {' AND '.join(where)}", p.values
    conv = selector_sql(conversion, p) if conversion else f"event_type IN {CONVERSION_TYPES}"
    flags = [
        f"CASE WHEN {selector_sql(cohort, p)} THEN {COHORT} ELSE 0 END" if cohort else str(COHORT),
        f"CASE WHEN {selector_sql(returning, p)} THEN {RETURNING} ELSE 0 END"
        if returning
        else str(RETURNING),
        f"CASE WHEN {conv} THEN {CONVERSION} ELSE 0 END",
    ]
    sql = (
        f"SELECT subject_id, occurred_at, ({' | '.join(flags)})::int4 AS flags"
        f" FROM events WHERE {' AND '.join(where)}"
    )
    if cohort and returning:
        sql = f"SELECT * FROM ({sql}) AS matched WHERE flags <> 0"
    return sql, p.values


async def retention_rows(
    conn: asyncpg.Connection, tenant_id: str, now: datetime, query: RetentionQuery
) -> tuple[I64, I64, I64]:
    """(subject, time, flags) of every event before now that puts a subject in a cohort,
    counts as returning or converts."""
    sql, args = retention_sql(tenant_id, now, query)
    cols = parse(await _copy(conn, sql, args), [">i4", ">i8", ">i4"])
    masks = retention_masks(query)
    flags = cols["f2"]
    if masks is not None:  # event types
        known = (flags >= 0) & (flags < len(masks))
        flags = np.where(known, masks[np.clip(flags, 0, len(masks) - 1)], 0)
    return cols["f0"], cols["f1"] + PG_EPOCH_US, flags


# A three-letter currency code as one integer (ISO 4217 codes are three capital letters;
# conversions in any other currency are left out of retention revenue).
_PACKED_CURRENCY = (
    "CASE WHEN currency_code ~ '^[A-Z]{3}$' THEN (ascii(substr(currency_code, 1, 1)) << 16)"
    " | (ascii(substr(currency_code, 2, 1)) << 8) | ascii(substr(currency_code, 3, 1))"
    " ELSE 0 END"
)


async def valued_conversions(
    conn: asyncpg.Connection,
    tenant_id: str,
    now: datetime,
    conversion: Selector | None,
    brands: Sequence[str],
) -> Valued:
    """Conversions with a value: subject, time, units, nanos and currency."""
    p = Literals()
    where = _base(p, tenant_id, None, now, brands)
    where.append(selector_sql(conversion, p) if conversion else f"event_type IN {CONVERSION_TYPES}")
    where.append("value_units IS NOT NULL")
    sql = (
        "SELECT subject_id, occurred_at, value_units, COALESCE(value_nanos, 0),"
        f" ({_PACKED_CURRENCY})::int4 AS currency FROM events WHERE {' AND '.join(where)}"
    )
    cols = parse(await _copy(conn, sql, p.values), [">i4", ">i8", ">i8", ">i4", ">i4"])
    keep = cols["f4"] != 0
    packed, currency = np.unique(cols["f4"][keep], return_inverse=True)
    names = tuple(bytes([c >> 16, (c >> 8) & 255, c & 255]).decode() for c in packed.tolist())
    return Valued(
        cols["f0"][keep],
        cols["f1"][keep] + PG_EPOCH_US,
        cols["f2"][keep],
        cols["f3"][keep],
        currency.reshape(-1).astype(np.int64),
        names,
    )
