"""The raw-events export's SQL: one query read through a server-side cursor, so the process
holds one batch of rows at a time however many events the range has.

PostgreSQL formats what it can (timestamps, decimal values, properties as JSON text), so the
process only joins text. The subject's ids are the read model's (a lead id once known,
and the first anonymous id seen); erased subjects have no rows left to export.
Never IP addresses or user agents: the read model does not hold them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg

from leadflow_reporting.db.funnel_rows import to_datetime
from leadflow_reporting.db.repository import CONVERSION_TYPES
from leadflow_reporting.db.selection import Params, selector_sql
from leadflow_reporting.domain.query import Selector

# The columns of ExportEventsQuery, in order.
COLUMNS = (
    "event_id",
    "occurred_at",
    "received_at",
    "event_type",
    "custom_event_name",
    "lead_id",
    "anonymous_id",
    "session_id",
    "brand_id",
    "page_url",
    "referrer",
    "country",
    "channel",
    "source",
    "medium",
    "campaign",
    "content",
    "term",
    "conversion",
    "value",
    "currency_code",
    "machine",
    "properties",
)

_CONVERSIONS = ", ".join(map(str, CONVERSION_TYPES))
_TIME = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
_SELECT = f"""
SELECT e.event_id, {_TIME.format("e.occurred_at")}, {_TIME.format("e.received_at")},
    e.event_type, e.custom_name, COALESCE(s.lead_id, ''), COALESCE(s.anonymous_id, ''),
    e.session_id, e.brand_id, e.page_url, e.referrer, e.country, e.channel, e.source,
    e.medium, e.campaign, e.content, e.term, e.event_type IN ({_CONVERSIONS}),
    CASE WHEN e.value_units IS NULL THEN NULL ELSE trim_scale(
        e.value_units::numeric + COALESCE(e.value_nanos, 0)::numeric / 1000000000)::text END,
    e.currency_code, e.machine, {{properties}}
FROM events e JOIN subjects s ON s.subject_id = e.subject_id
"""


@dataclass(frozen=True)
class EventsQuery:
    start_us: int | None  # inclusive; None: from the first event
    end_us: int | None  # exclusive
    selectors: tuple[Selector, ...] = ()  # any matching; empty: every event
    brand_ids: tuple[str, ...] = ()
    lead_id: str = ""  # only this subject's events (the lead id wins over the anonymous id)
    anonymous_id: str = ""
    omit_properties: bool = False
    include_machine: bool = False
    newest_first: bool = False

    @property
    def columns(self) -> tuple[str, ...]:
        return COLUMNS[:-1] if self.omit_properties else COLUMNS


async def subject_id(
    conn: asyncpg.Connection, tenant_id: str, lead_id: str, anonymous_id: str
) -> int | None:
    """The read model's subject of a lead id (else an anonymous id); None when unknown."""
    if lead_id:
        found = await conn.fetchval(
            "SELECT subject_id FROM subjects WHERE tenant_id = $1 AND lead_id = $2",
            tenant_id,
            lead_id,
        )
    else:
        found = await conn.fetchval(
            "SELECT subject_id FROM anonymous_ids WHERE tenant_id = $1 AND anonymous_id = $2",
            tenant_id,
            anonymous_id,
        )
    return int(found) if found is not None else None


def events_sql(tenant_id: str, query: EventsQuery, subject: int | None) -> tuple[str, list[object]]:
    p = Params()
    where = [f"e.tenant_id = {p.add(tenant_id, 'text')}"]
    if query.start_us is not None:
        where.append(f"e.occurred_at >= {p.add(to_datetime(query.start_us), 'timestamptz')}")
    if query.end_us is not None:
        where.append(f"e.occurred_at < {p.add(to_datetime(query.end_us), 'timestamptz')}")
    if not query.include_machine:
        where.append("NOT e.machine")
    if query.brand_ids:
        where.append(f"e.brand_id = ANY({p.add(list(query.brand_ids), 'text[]')})")
    if subject is not None:
        where.append(f"e.subject_id = {p.add(subject, 'int4')}")
    if query.selectors:
        # Selector predicates name event columns unqualified; none is a column of subjects.
        where.append("(" + " OR ".join(selector_sql(s, p) for s in query.selectors) + ")")
    direction = " DESC" if query.newest_first else ""
    properties = "NULL::text" if query.omit_properties else "e.properties::text"
    sql = (
        _SELECT.format(properties=properties)
        + " WHERE "
        + " AND ".join(where)
        + f" ORDER BY e.occurred_at{direction}, e.event_id{direction}"
    )
    return sql, p.values


async def stream_events(
    conn: asyncpg.Connection, sql: str, args: Sequence[object], batch: int
) -> AsyncIterator[list[asyncpg.Record]]:
    """The query's rows, `batch` at a time, through a server-side cursor (the connection
    must be inside a transaction)."""
    cursor = await conn.cursor(sql, *args)
    while True:
        rows = await cursor.fetch(batch)
        if not rows:
            return
        yield rows
