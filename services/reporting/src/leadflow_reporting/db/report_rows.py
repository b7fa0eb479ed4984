"""The rows paths and retention need, fetched packed in time slices and read with numpy (as
the funnel's, see funnel_rows.py and row_slices.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import numpy as np

from leadflow_reporting.db.funnel_rows import PG_EPOCH_US, to_datetime
from leadflow_reporting.db.row_slices import (
    fetch_packed,
    fetch_slices,
    packed_sql,
    parse_packed,
    time_slices,
)
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

PAGE_VIEW_TYPE = 1
CONVERSION_TYPES = (18, 19)
DAY_US = 86_400_000_000
# Sessions are read this far beyond the range, so that one starting just before it is
# not taken for one starting in it, and one starting at its end is followed to its end.
SESSION_MARGIN_US = DAY_US


# Statements each connection reading a report's slices runs first (see
# prefer_covering_index).
COVERING_INDEX = "SET LOCAL enable_seqscan = off"
_LOW32 = (1 << 32) - 1


async def prefer_covering_index(conn: asyncpg.Connection) -> None:
    """For the rest of the transaction, read through the covering indexes: when one tenant
    owns most rows the planner would scan the whole table, three times the bytes of the
    index (events_for_reports)."""
    await conn.execute(COVERING_INDEX)


def _signed32(values: I64) -> I64:
    """The low 32 bits of packed values, as a signed int4."""
    return ((values & _LOW32) ^ (1 << 31)) - (1 << 31)


def _base(p: Params, tenant_id: str, lo: str, hi: str, brands: Sequence[str]) -> list[str]:
    """The conditions of a tenant's human events with a time in [lo, hi) (SQL expressions)."""
    where = [
        f"tenant_id = {p.add(tenant_id, 'text')}",
        "NOT machine",
        f"occurred_at >= {lo}",
        f"occurred_at < {hi}",
    ]
    if brands:
        where.append(f"brand_id = ANY({p.add(list(brands), 'text[]')})")
    return where


def _any(selectors: Sequence[Selector], p: Params) -> str:
    return "(" + " OR ".join(selector_sql(s, p) for s in selectors) + ")"


def paths_rows_sql(tenant_id: str, query: PathsQuery, lo: str, hi: str) -> tuple[str, bool]:
    """Rows of (subject << 32 | path item), session key, time and, when the query has
    selectors, the ANCHOR / INCLUDED / EXCLUDED flags (the second value says whether they
    are fetched), with a time in [lo, hi) (SQL expressions)."""
    p = Literals()
    where = _base(p, tenant_id, lo, hi, query.brand_ids)
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
        f"SELECT (subject_id::int8 << 32) | (path_item::int8 & {_LOW32}), session_key,"
        f" occurred_at{selected} FROM events WHERE {' AND '.join(where)}"
    )
    return sql, with_flags


def _paths_kinds(with_flags: bool) -> list[str]:
    return ["int8", "int8", "timestamptz"] + (["int4"] if with_flags else [])


def paths_sql(
    tenant_id: str, query: PathsQuery, lo_us: int | None = None, hi_us: int | None = None
) -> tuple[str, bool]:
    """The packed rows (see row_slices) of [lo, hi) (default: the range with its margins),
    and whether they carry flags."""
    lo, hi = paths_span(query)
    with_flags = paths_rows_sql(tenant_id, query, "NULL", "NULL")[1]
    sql = packed_sql(
        lambda a, b: paths_rows_sql(tenant_id, query, a, b)[0],
        _paths_kinds(with_flags),
        lo if lo_us is None else lo_us,
        hi if hi_us is None else hi_us,
    )
    return sql, with_flags


def paths_span(query: PathsQuery) -> tuple[int, int]:
    """The times paths read: the range and a margin each side."""
    return query.start_us - SESSION_MARGIN_US, query.end_us + SESSION_MARGIN_US


async def paths_rows(
    conn: asyncpg.Connection,
    tenant_id: str,
    query: PathsQuery,
    pool: asyncpg.Pool | None = None,
) -> PathsRows:
    """The events around the range, in time order; with a pool, its time slices read at the
    same time (see row_slices)."""
    if pool is None:
        sql, with_flags = paths_sql(tenant_id, query)
        values = await fetch_packed(conn, sql)
    else:
        sqls = [paths_sql(tenant_id, query, lo, hi) for lo, hi in time_slices(*paths_span(query))]
        with_flags = sqls[0][1]
        parts = await fetch_slices(pool, conn, [q for q, _ in sqls], setup=COVERING_INDEX)
        values = [v for part in parts for v in part]
    cols = parse_packed(values, _paths_kinds(with_flags))
    return PathsRows(cols[0], cols[1], cols[2] + PG_EPOCH_US, cols[3] if with_flags else None)


@dataclass(frozen=True)
class PathsRows:
    """The fetched rows, in time order: subject and path item packed in one integer (so
    that reordering them moves one array), session key, time, and the selector flags when
    the query has selectors."""

    packed: I64
    session_key: I64
    time: I64
    selected: I64 | None

    @property
    def subject(self) -> I64:
        return self.packed >> 32

    def unpacked(self, order: I64) -> tuple[I64, I64, I64, I64]:
        """subject, time, item and flags (ANCHOR / INCLUDED / EXCLUDED, PAGE_VIEW) of the
        rows in this order."""
        packed = self.packed[order]
        item = _signed32(packed)
        if self.selected is None:
            flags = np.full(len(item), INCLUDED, dtype=np.int64)
        else:
            flags = self.selected[order]
        flags |= np.where((item > 0) | (item == -PAGE_VIEW_TYPE), PAGE_VIEW, 0)
        return packed >> 32, self.time[order], item, flags


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


def retention_rows_sql(tenant_id: str, query: RetentionQuery, lo: str, hi: str) -> str:
    """Rows of (subject << 32 | event type or flags) and time, with a time in [lo, hi) (SQL
    expressions)."""
    cohort, returning, conversion = (
        query.cohort_event,
        query.returning_event,
        query.conversion_event,
    )
    p = Literals()
    where = _base(p, tenant_id, lo, hi, query.brand_ids)
    if retention_masks(query) is not None:
        if cohort and returning:
            types = sorted({s.event_type for s in (cohort, returning, conversion) if s})
            types = sorted({*types, *(CONVERSION_TYPES if conversion is None else ())})
            where.append(f"event_type = ANY({p.add(types, 'int2[]')})")
        sql = "SELECT (subject_id::int8 << 32) | event_type, occurred_at FROM events"
        return f"{sql} WHERE {' AND '.join(where)}"
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
    keep = " WHERE flags <> 0" if cohort and returning else ""
    return f"SELECT (subject_id::int8 << 32) | flags, occurred_at FROM ({sql}) AS matched{keep}"


def retention_slices(first_us: int, now_us: int, query: RetentionQuery) -> list[tuple[int, int]]:
    """Everything from the tenant's first event to now, in two slices cut halfway through
    the range (up to now), where most of what a retention table reads lies."""
    stop = min(query.end_us, now_us)
    middle = query.start_us + (stop - query.start_us) // 2
    if not first_us < middle < now_us:
        return [(first_us, now_us)]
    return [(first_us, middle), (middle, now_us)]


async def retention_rows(
    conn: asyncpg.Connection,
    tenant_id: str,
    now: datetime,
    query: RetentionQuery,
    pool: asyncpg.Pool | None = None,
) -> tuple[I64, I64, I64, Valued]:
    """(subject, time, flags) of every event before now that puts a subject in a cohort,
    counts as returning or converts, and the conversions with a value; with a pool, the
    slices of the first and the second read at the same time (see row_slices)."""
    first = await conn.fetchval(
        "SELECT min(occurred_at) FROM events WHERE tenant_id = $1 AND NOT machine", tenant_id
    )
    now_us = _us(now)
    first_us = now_us if first is None else min(_us(first), now_us)
    slices = retention_slices(first_us, now_us, query) if pool is not None else [(first_us, now_us)]
    sqls = [
        packed_sql(lambda a, b: retention_rows_sql(tenant_id, query, a, b), _KINDS, lo, hi)
        for lo, hi in slices
    ]
    sqls.append(
        packed_sql(
            lambda a, b: _valued_sql(tenant_id, a, b, query.conversion_event, query.brand_ids),
            _VALUED_KINDS,
            first_us,
            now_us,
        )
    )
    if pool is None:
        parts = [await fetch_packed(conn, sql) for sql in sqls]
    else:
        parts = await fetch_slices(pool, conn, sqls, setup=COVERING_INDEX)
    packed, time = parse_packed([v for part in parts[:-1] for v in part], _KINDS)
    masks = retention_masks(query)
    flags = packed & _LOW32
    if masks is not None:  # event types
        flags = np.where(flags < len(masks), masks[np.minimum(flags, len(masks) - 1)], 0)
    return packed >> 32, time + PG_EPOCH_US, flags, _valued(parts[-1])


_KINDS = ["int8", "timestamptz"]
_VALUED_KINDS = ["int4", "timestamptz", "int8", "int4", "int4"]


def _us(value: datetime) -> int:
    delta = value - to_datetime(0)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# A three-letter currency code as one integer (ISO 4217 codes are three capital letters;
# conversions in any other currency are left out of retention revenue).
_PACKED_CURRENCY = (
    "CASE WHEN currency_code ~ '^[A-Z]{3}$' THEN (ascii(substr(currency_code, 1, 1)) << 16)"
    " | (ascii(substr(currency_code, 2, 1)) << 8) | ascii(substr(currency_code, 3, 1))"
    " ELSE 0 END"
)


def _valued_sql(
    tenant_id: str, lo: str, hi: str, conversion: Selector | None, brands: Sequence[str]
) -> str:
    """Conversions with a value: subject, time, units, nanos and currency."""
    p = Literals()
    where = _base(p, tenant_id, lo, hi, brands)
    where.append(selector_sql(conversion, p) if conversion else f"event_type IN {CONVERSION_TYPES}")
    where.append("value_units IS NOT NULL")
    return (
        "SELECT subject_id, occurred_at, value_units, COALESCE(value_nanos, 0),"
        f" ({_PACKED_CURRENCY})::int4 AS currency FROM events WHERE {' AND '.join(where)}"
    )


def _valued(values: list[bytes]) -> Valued:
    subject, time, units, nanos, packed_currency = parse_packed(values, _VALUED_KINDS)
    keep = packed_currency != 0
    packed, currency = np.unique(packed_currency[keep], return_inverse=True)
    names = tuple(bytes([c >> 16, (c >> 8) & 255, c & 255]).decode() for c in packed.tolist())
    return Valued(
        subject[keep],
        time[keep] + PG_EPOCH_US,
        units[keep],
        nanos[keep],
        currency.reshape(-1).astype(np.int64),
        names,
    )
