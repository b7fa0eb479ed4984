"""The rows paths and retention need, each fetched in one binary COPY and parsed with numpy
(as the funnel's, see funnel_rows.py)."""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import asyncpg
import numpy as np

from leadflow_reporting.db.funnel_rows import PG_EPOCH_US, to_datetime
from leadflow_reporting.db.selection import CUSTOM, Params, selector_sql
from leadflow_reporting.domain.funnel import I64
from leadflow_reporting.domain.paths import ANCHOR, EXCLUDED, INCLUDED, PAGE_VIEW, PathsQuery
from leadflow_reporting.domain.query import Selector
from leadflow_reporting.domain.retention import (
    COHORT,
    CONVERSION,
    RETURNING,
    Conversion,
    RetentionQuery,
)

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
PAGE_VIEW_TYPE = 1
CONVERSION_TYPES = (18, 19)
DAY_US = 86_400_000_000
# Sessions are read this far beyond the range, so that one starting just before it is
# not taken for one starting in it, and one starting at its end is followed to its end.
SESSION_MARGIN_US = DAY_US


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


def paths_sql(tenant_id: str, query: PathsQuery) -> tuple[str, list[object]]:
    p = Params()
    where = _base(
        p,
        tenant_id,
        to_datetime(query.start_us - SESSION_MARGIN_US),
        to_datetime(query.end_us + SESSION_MARGIN_US),
        query.brand_ids,
    )
    flags = [f"CASE WHEN event_type = {PAGE_VIEW_TYPE} THEN {PAGE_VIEW} ELSE 0 END"]
    if query.anchor is not None:
        flags.append(f"CASE WHEN {selector_sql(query.anchor, p)} THEN {ANCHOR} ELSE 0 END")
    if query.include:
        flags.append(f"CASE WHEN {_any(query.include, p)} THEN {INCLUDED} ELSE 0 END")
    else:
        flags.append(str(INCLUDED))
    if query.exclude:
        flags.append(f"CASE WHEN {_any(query.exclude, p)} THEN {EXCLUDED} ELSE 0 END")
    item = (
        f"(CASE WHEN event_type = {PAGE_VIEW_TYPE} AND page_id <> 0 THEN page_id"
        f" WHEN event_type = {CUSTOM} THEN custom_id ELSE -event_type END)::int4"
    )
    sql = (
        f"SELECT subject_id, session_key, occurred_at, {item}, ({' | '.join(flags)})::int4"
        f" FROM events WHERE {' AND '.join(where)}"
    )
    return sql, p.values


async def paths_rows(conn: asyncpg.Connection, tenant_id: str, query: PathsQuery) -> dict[str, I64]:
    """subject, session_key, time, item, flags of the events around the range."""
    sql, args = paths_sql(tenant_id, query)
    cols = parse(await _copy(conn, sql, args), [">i4", ">i8", ">i8", ">i4", ">i4"])
    return {
        "subject": cols["f0"],
        "session_key": cols["f1"],
        "time": cols["f2"] + PG_EPOCH_US,
        "item": cols["f3"],
        "flags": cols["f4"],
    }


def retention_sql(tenant_id: str, now: datetime, query: RetentionQuery) -> tuple[str, list[object]]:
    cohort, returning, conversion = (
        query.cohort_event,
        query.returning_event,
        query.conversion_event,
    )
    p = Params()
    where = _base(p, tenant_id, None, now, query.brand_ids)
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
    return cols["f0"], cols["f1"] + PG_EPOCH_US, cols["f2"]


async def valued_conversions(
    conn: asyncpg.Connection,
    tenant_id: str,
    now: datetime,
    conversion: Selector | None,
    brands: Sequence[str],
) -> list[Conversion]:
    """Conversions with a value (and their subject, time and currency)."""
    p = Params()
    where = _base(p, tenant_id, None, now, brands)
    where.append(selector_sql(conversion, p) if conversion else f"event_type IN {CONVERSION_TYPES}")
    where.append("value_units IS NOT NULL AND currency_code <> ''")
    rows = await conn.fetch(
        "SELECT subject_id, (extract(epoch FROM occurred_at) * 1000000)::int8 AS t,"
        " currency_code, value_units::numeric + value_nanos::numeric / 1000000000 AS v"
        f" FROM events WHERE {' AND '.join(where)}",
        *p.values,
    )
    return [Conversion(r["subject_id"], r["t"], r["currency_code"], Decimal(r["v"])) for r in rows]
