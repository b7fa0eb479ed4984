"""SQL of the business reports (lead quality, lifecycle, engagement, attribution summary,
insights, posting hours, A/B tests, portfolio): one query per figure family, aggregated in
PostgreSQL where the answer is a count, rows handed to the pure functions otherwise.
Human events only unless a report asks otherwise; every value is a parameter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from leadflow_reporting.db.selection import Params, breakdown_sql, selector_sql
from leadflow_reporting.domain.query import Breakdown, Selector

US = "(extract(epoch FROM {}) * 1000000)::int8"
CONVERSION_TYPES = "(18, 19)"
MARKETING = ("channel", "source", "medium", "campaign", "content", "term")
VALUE = "(value_units::numeric + COALESCE(value_nanos, 0)::numeric / 1000000000)"


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    brand_ids: tuple[str, ...] = ()


def _events_where(p: Params, w: Window, *, machine: bool = False, alias: str = "") -> list[str]:
    a = f"{alias}." if alias else ""
    where = [
        f"{a}tenant_id = $1",
        f"{a}occurred_at >= {p.add(w.start, 'timestamptz')}",
        f"{a}occurred_at < {p.add(w.end, 'timestamptz')}",
    ]
    if not machine:
        where.append(f"NOT {a}machine")
    if w.brand_ids:
        where.append(f"{a}brand_id = ANY({p.add(list(w.brand_ids), 'text[]')})")
    return where


def _conversion_sql(selector: Selector | None, p: Params) -> str:
    return selector_sql(selector, p) if selector else f"event_type IN {CONVERSION_TYPES}"


# Lead quality and lifecycle ----------------------------------------------------------------


async def leads(
    conn: asyncpg.Connection, tenant_id: str, identified: tuple[datetime, datetime] | None
) -> list[asyncpg.Record]:
    """Every lead (known from ingest's events or from a score) with its home brand and
    latest score (NULL total when never scored)."""
    where = ""
    args: list[Any] = [tenant_id]
    if identified is not None:
        where = "WHERE l.identified_at >= $2 AND l.identified_at < $3"
        args += list(identified)
    return await conn.fetch(
        "WITH l AS (SELECT lead_id, home_brand_id, identified_at FROM subjects"
        "  WHERE tenant_id = $1 AND lead_id IS NOT NULL),"
        " s AS (SELECT * FROM lead_scores WHERE tenant_id = $1)"
        " SELECT COALESCE(NULLIF(l.home_brand_id, ''), s.home_brand_id, '') AS brand_id,"
        " s.total, s.grade, s.temperature"
        f" FROM l FULL JOIN s USING (lead_id) {where}",
        *args,
    )


async def stage_changes(
    conn: asyncpg.Connection, tenant_id: str, brand_ids: Sequence[str]
) -> list[asyncpg.Record]:
    args: list[Any] = [tenant_id]
    where = ""
    if brand_ids:
        where = " AND home_brand_id = ANY($2::text[])"
        args.append(list(brand_ids))
    return await conn.fetch(
        "SELECT lead_id, from_stage, to_stage, event_id, time_in_previous_us,"
        f" {US.format('occurred_at')} AS t FROM stage_changes WHERE tenant_id = $1{where}",
        *args,
    )


# Engagement ----------------------------------------------------------------------------


async def engagement(
    conn: asyncpg.Connection,
    tenant_id: str,
    w: Window,
    include_machine: bool,
    excluded_types: Sequence[int],
) -> dict[str, Any]:
    p = Params([tenant_id])
    where = _events_where(p, w, machine=include_machine)
    if excluded_types:
        where.append(f"event_type <> ALL({p.add(list(excluded_types), 'int2[]')})")
    cond = " AND ".join(where)
    cells = await conn.fetch(
        "SELECT channel, event_type, custom_name, count(*) AS events,"
        " count(DISTINCT subject_id) AS subjects"
        f" FROM events WHERE {cond} GROUP BY 1, 2, 3",
        *p.values,
    )
    types = await conn.fetch(
        "SELECT event_type, custom_name, count(*) AS events,"
        " count(DISTINCT subject_id) AS subjects"
        f" FROM events WHERE {cond} GROUP BY 1, 2",
        *p.values,
    )
    channels = await conn.fetch(
        "SELECT channel, count(*) AS events, count(DISTINCT subject_id) AS subjects,"
        " count(DISTINCT (subject_id, session_id)) FILTER (WHERE session_id <> '') AS sessions"
        f" FROM events WHERE {cond} GROUP BY 1",
        *p.values,
    )
    totals = await conn.fetchrow(
        "SELECT count(*) AS events, count(DISTINCT subject_id) AS subjects"
        f" FROM events WHERE {cond}",
        *p.values,
    )
    daily = await conn.fetch(
        "SELECT date_bin(interval '1 day', occurred_at, timestamptz 'epoch') AS day,"
        f" count(*) AS events FROM events WHERE {cond} GROUP BY 1",
        *p.values,
    )
    # A conversion goes to the channel of the last event with one in its session (itself
    # included), at or before it.
    pc = Params([tenant_id])
    cw = _events_where(pc, w, machine=include_machine, alias="c")
    conversions = await conn.fetch(
        "SELECT COALESCE(NULLIF(c.channel, ''), t.channel, '') AS channel, count(*) AS n"
        " FROM events c LEFT JOIN LATERAL (SELECT e.channel FROM events e"
        "  WHERE e.subject_id = c.subject_id AND e.tenant_id = c.tenant_id"
        "  AND c.session_id <> '' AND e.session_id = c.session_id AND e.channel <> ''"
        "  AND e.occurred_at <= c.occurred_at AND NOT e.machine"
        "  ORDER BY e.occurred_at DESC LIMIT 1) t ON true"
        f" WHERE {' AND '.join(cw)} AND c.event_type IN {CONVERSION_TYPES} GROUP BY 1",
        *pc.values,
    )
    pe = Params([tenant_id])
    ew = " AND ".join(_events_where(pe, w, machine=True))
    email_key = (
        "(subject_id, COALESCE(properties ->> 'message_id', NULLIF(campaign, ''), event_id))"
    )
    email = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE event_type = 6 AND NOT machine) AS sent,"
        " count(*) FILTER (WHERE event_type = 10 AND NOT machine) AS bounced,"
        f" count(DISTINCT {email_key}) FILTER (WHERE event_type = 7 AND NOT machine) AS opened,"
        " count(*) FILTER (WHERE event_type = 7 AND machine) AS machine_opens,"
        f" count(DISTINCT {email_key}) FILTER (WHERE event_type = 8 AND NOT machine) AS clicked,"
        " count(*) FILTER (WHERE event_type = 8 AND machine) AS machine_clicks,"
        " count(*) FILTER (WHERE event_type = 9 AND NOT machine) AS replied"
        f" FROM events WHERE {ew} AND event_type BETWEEN 6 AND 10",
        *pe.values,
    )
    return {
        "cells": cells,
        "types": types,
        "channels": channels,
        "totals": totals,
        "daily": daily,
        "conversions": conversions,
        "email": email,
    }


# Attribution summary -------------------------------------------------------------------


async def attribution_summary(
    conn: asyncpg.Connection,
    tenant_id: str,
    w: Window,
    models: Sequence[int],
    group_column: str,
    conversion_types: Sequence[str],
) -> dict[str, Any]:
    assert group_column in ("channel", "source", "medium", "campaign", "brand_id")
    p = Params([tenant_id])
    where = [
        "c.tenant_id = $1",
        f"c.occurred_at >= {p.add(w.start, 'timestamptz')}",
        f"c.occurred_at < {p.add(w.end, 'timestamptz')}",
    ]
    if w.brand_ids:
        where.append(f"c.brand_id = ANY({p.add(list(w.brand_ids), 'text[]')})")
    if conversion_types:
        where.append(f"c.conversion_type = ANY({p.add(list(conversion_types), 'text[]')})")
    cond = " AND ".join(where)
    conversion_args = list(p.values)
    models_param = p.add(list(models), "int2[]")
    rows = await conn.fetch(
        f"SELECT k.model, k.{group_column} AS key, sum(k.share) AS conversions,"
        " count(*) AS touchpoints, count(DISTINCT k.conversion_id) AS touched"
        " FROM attributed_conversions c JOIN attribution_credits k"
        " ON k.tenant_id = c.tenant_id AND k.conversion_id = c.conversion_id"
        f" WHERE {cond} AND k.model = ANY({models_param}) GROUP BY 1, 2",
        *p.values,
    )
    values = await conn.fetch(
        f"SELECT k.model, k.{group_column} AS key, k.currency_code,"
        " sum(k.credited_value) AS value"
        " FROM attributed_conversions c JOIN attribution_credits k"
        " ON k.tenant_id = c.tenant_id AND k.conversion_id = c.conversion_id"
        f" WHERE {cond} AND k.model = ANY({models_param}) AND k.credited_value IS NOT NULL"
        " AND k.currency_code <> '' GROUP BY 1, 2, 3",
        *p.values,
    )
    conversions = await conn.fetch(
        "SELECT c.touchpoints > 0 AS attributed, c.currency_code, count(*) AS n,"
        " sum(c.value) AS value FROM attributed_conversions c"
        f" WHERE {cond} GROUP BY 1, 2",
        *conversion_args,
    )
    return {"rows": rows, "values": values, "conversions": conversions}


# Insights ------------------------------------------------------------------------------


async def touchpoints(conn: asyncpg.Connection, tenant_id: str, w: Window) -> list[asyncpg.Record]:
    """Events with a marketing context in the window, in time order."""
    p = Params([tenant_id])
    where = _events_where(p, w)
    touch = " OR ".join(f"{c} <> ''" for c in MARKETING)
    return await conn.fetch(
        f"SELECT subject_id, {US.format('occurred_at')} AS t, {', '.join(MARKETING)}, brand_id,"
        f" event_type, custom_name FROM events WHERE {' AND '.join(where)} AND ({touch})"
        " ORDER BY occurred_at, id",
        *p.values,
    )


async def conversions(
    conn: asyncpg.Connection, tenant_id: str, w: Window, selector: Selector | None
) -> list[asyncpg.Record]:
    p = Params([tenant_id])
    where = _events_where(p, w)
    where.append(_conversion_sql(selector, p))
    return await conn.fetch(
        f"SELECT subject_id, {US.format('occurred_at')} AS t,"
        f" CASE WHEN value_units IS NULL THEN NULL ELSE {VALUE} END AS value, currency_code"
        f" FROM events WHERE {' AND '.join(where)}",
        *p.values,
    )


# Posting hours and A/B tests -----------------------------------------------------------


async def posts(
    conn: asyncpg.Connection,
    tenant_id: str,
    w: Window,
    selector: Selector,
    engagement_path: str,
    breakdown: Breakdown | None,
) -> list[asyncpg.Record]:
    p = Params([tenant_id])
    where = _events_where(p, w)
    where.append(selector_sql(selector, p))
    path = p.add(engagement_path.split("."), "text[]")
    value = f"(properties #> {path})"
    by = breakdown_sql(breakdown, p) if breakdown is not None else "''"
    return await conn.fetch(
        f"SELECT {US.format('occurred_at')} AS t,"
        f" CASE WHEN jsonb_typeof({value}) = 'number' THEN ({value})::float8 ELSE 0 END"
        f" AS engagement, {by} AS value FROM events WHERE {' AND '.join(where)}",
        *p.values,
    )


async def exposures(
    conn: asyncpg.Connection,
    tenant_id: str,
    w: Window,
    variant_path: str,
    selector: Selector | None,
) -> list[asyncpg.Record]:
    p = Params([tenant_id])
    where = _events_where(p, w)
    path = p.add(variant_path.split("."), "text[]")
    if selector is not None:
        where.append(selector_sql(selector, p))
    where.append(f"jsonb_typeof(properties #> {path}) IN ('string', 'number', 'boolean')")
    return await conn.fetch(
        f"SELECT subject_id, {US.format('occurred_at')} AS t, properties #>> {path} AS variant"
        f" FROM events WHERE {' AND '.join(where)}",
        *p.values,
    )


# Portfolio -----------------------------------------------------------------------------


async def portfolio(conn: asyncpg.Connection, tenant_id: str, w: Window) -> dict[str, Any]:
    """Per brand (brand_id set) and for all the window's brands together (brand_id NULL)."""
    p = Params([tenant_id])
    cond = " AND ".join(_events_where(p, w))
    activity = await conn.fetch(
        "SELECT CASE WHEN GROUPING(brand_id) = 1 THEN NULL ELSE brand_id END AS brand_id,"
        " count(DISTINCT subject_id) AS active,"
        f" count(*) FILTER (WHERE event_type IN {CONVERSION_TYPES}) AS conversions,"
        " count(DISTINCT subject_id) FILTER"
        f"  (WHERE event_type IN {CONVERSION_TYPES}) AS converting"
        f" FROM events WHERE {cond} GROUP BY GROUPING SETS ((brand_id), ())",
        *p.values,
    )
    revenue = await conn.fetch(
        "SELECT CASE WHEN GROUPING(brand_id) = 1 THEN NULL ELSE brand_id END AS brand_id,"
        f" currency_code, sum({VALUE}) AS value FROM events WHERE {cond}"
        f" AND event_type IN {CONVERSION_TYPES} AND value_units IS NOT NULL"
        " AND currency_code <> '' GROUP BY GROUPING SETS ((brand_id, currency_code),"
        " (currency_code))",
        *p.values,
    )
    # The latest mrr / arr each subject sent on a conversion of the brand up to the end.
    pr = Params([tenant_id])
    rwhere = [
        "tenant_id = $1",
        "NOT machine",
        f"occurred_at < {pr.add(w.end, 'timestamptz')}",
        f"event_type IN {CONVERSION_TYPES}",
        "(jsonb_typeof(properties -> 'mrr') = 'number'"
        " OR jsonb_typeof(properties -> 'arr') = 'number')",
    ]
    if w.brand_ids:
        rwhere.append(f"brand_id = ANY({pr.add(list(w.brand_ids), 'text[]')})")
    recurring = await conn.fetch(
        "SELECT DISTINCT ON (brand_id, subject_id) brand_id, subject_id,"
        " COALESCE(NULLIF(currency_code, ''), properties ->> 'currency', '') AS currency_code,"
        " CASE WHEN jsonb_typeof(properties -> 'mrr') = 'number'"
        "  THEN (properties ->> 'mrr')::numeric END AS mrr,"
        " CASE WHEN jsonb_typeof(properties -> 'arr') = 'number'"
        "  THEN (properties ->> 'arr')::numeric END AS arr"
        f" FROM events WHERE {' AND '.join(rwhere)}"
        " ORDER BY brand_id, subject_id, occurred_at DESC, id DESC",
        *pr.values,
    )
    leads = await conn.fetch(
        "SELECT home_brand_id AS brand_id, count(*) AS total,"
        " count(*) FILTER (WHERE identified_at >= $2 AND identified_at < $3) AS new"
        " FROM subjects WHERE tenant_id = $1 AND lead_id IS NOT NULL GROUP BY 1",
        tenant_id,
        w.start,
        w.end,
    )
    routed_in = await conn.fetch(
        "SELECT brand_id, count(*) AS n FROM routes WHERE tenant_id = $1"
        " AND occurred_at >= $2 AND occurred_at < $3 GROUP BY 1",
        tenant_id,
        w.start,
        w.end,
    )
    routed_out = await conn.fetch(
        "SELECT home_brand_id AS brand_id, count(*) AS n FROM routes WHERE tenant_id = $1"
        " AND cross_brand AND occurred_at >= $2 AND occurred_at < $3 GROUP BY 1",
        tenant_id,
        w.start,
        w.end,
    )
    breaches = await conn.fetch(
        "SELECT brand_id, count(*) AS n FROM assignment_breaches WHERE tenant_id = $1"
        " AND occurred_at >= $2 AND occurred_at < $3 GROUP BY 1",
        tenant_id,
        w.start,
        w.end,
    )
    hot = await conn.fetch(
        "SELECT COALESCE(NULLIF(s.home_brand_id, ''), l.home_brand_id, '') AS brand_id,"
        " count(*) AS n FROM lead_scores l LEFT JOIN subjects s"
        " ON s.tenant_id = l.tenant_id AND s.lead_id = l.lead_id"
        " WHERE l.tenant_id = $1 AND l.temperature = 3 GROUP BY 1",
        tenant_id,
    )
    return {
        "activity": activity,
        "revenue": revenue,
        "recurring": recurring,
        "leads": leads,
        "routed_in": routed_in,
        "routed_out": routed_out,
        "breaches": breaches,
        "hot": hot,
    }


def as_decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value or 0))


async def turned_hot(conn: asyncpg.Connection, tenant_id: str, w: Window) -> int:
    """Leads whose temperature rose to hot in the window (of the window's home brands)."""
    p = Params([tenant_id])
    where = [
        "c.tenant_id = $1",
        "c.dimension = 2",  # temperature
        "c.direction = 1",  # up
        "c.to_value = 3",  # hot
        f"c.occurred_at >= {p.add(w.start, 'timestamptz')}",
        f"c.occurred_at < {p.add(w.end, 'timestamptz')}",
    ]
    if w.brand_ids:
        where.append(
            "COALESCE(NULLIF(s.home_brand_id, ''), c.home_brand_id, '')"
            f" = ANY({p.add(list(w.brand_ids), 'text[]')})"
        )
    n: int = await conn.fetchval(
        "SELECT count(DISTINCT c.lead_id) FROM threshold_crossings c LEFT JOIN subjects s"
        " ON s.tenant_id = c.tenant_id AND s.lead_id = c.lead_id"
        f" WHERE {' AND '.join(where)}",
        *p.values,
    )
    return n
