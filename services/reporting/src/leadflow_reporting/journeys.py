"""One subject's journey: the subject's rows read by subject id, then milestones, trend and
churn risk from the pure functions of domain/journey.py; the timeline is a keyset page."""

from __future__ import annotations

import base64
import binascii
import json
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from leadflow_platform.errors import InvalidArgument, NotFound
from leadflow_platform.lifecycle import ServiceContext
from leadflow_reporting.api.validation import EVENT_TYPE_NAMES
from leadflow_reporting.domain.journey import (
    CONVERSIONS,
    Factor,
    JourneyEvent,
    Milestone,
    MilestoneKind,
    Outcome,
    Trend,
    churn,
    milestones,
    trend,
    windows,
)
from leadflow_reporting.domain.quality import Transition, current_stage

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
CUSTOM = 24


@dataclass(frozen=True)
class JourneyQuery:
    lead_id: str
    anonymous_id: str
    start_us: int | None
    end_us: int | None
    hide_machine: bool
    page_size: int
    page_token: str


@dataclass(frozen=True)
class JourneyAnswer:
    lead_id: str
    anonymous_id: str
    merged_anonymous_ids: list[str]
    home_brand_id: str
    first_seen_us: int | None
    last_seen_us: int | None
    event_count: int
    session_count: int
    conversion_count: int
    revenue: list[tuple[str, Decimal]]
    milestones: list[Milestone]
    trend: Trend
    recent: int
    previous: int
    churn_risk: float
    factors: list[Factor]
    timeline: list[asyncpg.Record]
    next_page_token: str
    score: float | None = None
    grade: int = 0
    temperature: int = 0
    stage: int = 0


_EVENT_COLUMNS = (
    "id, event_id, (extract(epoch FROM occurred_at) * 1000000)::int8 AS t, event_type,"
    " custom_name, brand_id, session_id, machine, channel, source, medium, campaign, content,"
    " term, value_units, value_nanos, currency_code"
)


# A microsecond count as a timestamp, exactly.
_AT = "(timestamptz 'epoch' + ${}::int8 * interval '1 microsecond')"


def _label(event_type: int, custom_name: str) -> str:
    return custom_name if event_type == CUSTOM else EVENT_TYPE_NAMES.get(event_type, "")


def _value(r: asyncpg.Record) -> Decimal | None:
    if r["value_units"] is None:
        return None
    return Decimal(r["value_units"]) + Decimal(r["value_nanos"] or 0) / Decimal(1_000_000_000)


def _journey_event(r: asyncpg.Record) -> JourneyEvent:
    touch = any(r[c] for c in ("channel", "source", "medium", "campaign", "content", "term"))
    return JourneyEvent(
        r["event_id"],
        r["t"],
        r["event_type"],
        r["brand_id"],
        r["machine"],
        touch,
        r["currency_code"],
        _value(r),
        _label(r["event_type"], r["custom_name"]),
    )


class Journeys:
    def __init__(self, context: ServiceContext) -> None:
        self._context = context

    async def run(self, tenant_id: str, query: JourneyQuery, now_us: int) -> JourneyAnswer:
        after = _decode(query.page_token) if query.page_token else None
        async with (
            self._context.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            subject = await _subject(conn, tenant_id, query.lead_id, query.anonymous_id)
            if subject is None:
                raise NotFound("no such subject")
            sid = subject["subject_id"]
            aliases = await conn.fetch(
                "SELECT anonymous_id, (extract(epoch FROM aliased_at) * 1000000)::int8 AS t"
                " FROM anonymous_ids WHERE tenant_id = $1 AND subject_id = $2"
                " ORDER BY aliased_at NULLS LAST, anonymous_id",
                tenant_id,
                sid,
            )
            history = await conn.fetch(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE subject_id = $1 AND tenant_id = $2",
                sid,
                tenant_id,
            )
            where = ["subject_id = $1", "tenant_id = $2"]
            args: list[Any] = [sid, tenant_id]
            if query.start_us is not None:
                args += [query.start_us, query.end_us]
                where.append(f"occurred_at >= {_AT.format(3)} AND occurred_at < {_AT.format(4)}")
            if query.hide_machine:
                where.append("NOT machine")
            if after is not None:
                args += [after[0], after[1]]
                n = len(args)
                where.append(f"(occurred_at, id) < ({_AT.format(n - 1)}, ${n}::int8)")
            page = await conn.fetch(
                f"SELECT {_EVENT_COLUMNS}, properties, page_url FROM events"
                f" WHERE {' AND '.join(where)} ORDER BY occurred_at DESC, id DESC"
                f" LIMIT {query.page_size + 1}",
                *args,
            )
            outcomes, latest = await _outcomes(conn, tenant_id, subject["lead_id"])
        events = [_journey_event(r) for r in history]
        human = [e for e in events if not e.machine]
        recent, previous = windows(events, now_us)
        risk, factors = churn(events, now_us)
        revenue: dict[str, Decimal] = defaultdict(Decimal)
        for e in human:
            if e.event_type in CONVERSIONS and e.value is not None and e.currency:
                revenue[e.currency] += e.value
        identified = subject["identified_us"] if subject["lead_id"] else None
        more = len(page) > query.page_size
        page = page[: query.page_size]
        merged = [a["anonymous_id"] for a in aliases if a["t"] is not None]
        return JourneyAnswer(
            lead_id=subject["lead_id"] or "",
            anonymous_id=subject["anonymous_id"] or "",
            merged_anonymous_ids=merged,
            home_brand_id=subject["home_brand_id"] if subject["lead_id"] else "",
            first_seen_us=min((e.time_us for e in events), default=None),
            last_seen_us=max((e.time_us for e in events), default=None),
            event_count=len(human),
            session_count=len({r["session_id"] for r in history if not r["machine"]}),
            conversion_count=sum(1 for e in human if e.event_type in CONVERSIONS),
            revenue=sorted(revenue.items()),
            milestones=milestones(
                events,
                identified,
                [(a["anonymous_id"], a["t"]) for a in aliases if a["t"]],
                outcomes,
            ),
            trend=trend(recent, previous),
            recent=recent,
            previous=previous,
            churn_risk=risk,
            factors=factors,
            timeline=list(page),
            next_page_token=_encode(page[-1]["t"], page[-1]["id"]) if more and page else "",
            score=latest["total"] if latest else None,
            grade=latest["grade"] if latest else 0,
            temperature=latest["temperature"] if latest else 0,
            stage=_stage(outcomes, latest),
        )


async def _subject(
    conn: asyncpg.Connection, tenant_id: str, lead_id: str, anonymous_id: str
) -> asyncpg.Record | None:
    columns = (
        "s.subject_id, s.lead_id, s.anonymous_id, s.home_brand_id,"
        " (extract(epoch FROM s.identified_at) * 1000000)::int8 AS identified_us"
    )
    if lead_id:
        return await conn.fetchrow(
            f"SELECT {columns} FROM subjects s WHERE s.tenant_id = $1 AND s.lead_id = $2",
            tenant_id,
            lead_id,
        )
    return await conn.fetchrow(
        f"SELECT {columns} FROM anonymous_ids a JOIN subjects s USING (subject_id)"
        " WHERE a.tenant_id = $1 AND a.anonymous_id = $2",
        tenant_id,
        anonymous_id,
    )


_US = "(extract(epoch FROM {}) * 1000000)::int8"


async def _outcomes(
    conn: asyncpg.Connection, tenant_id: str, lead_id: str | None
) -> tuple[list[Outcome], asyncpg.Record | None]:
    """The lead's stage changes, threshold crossings and routes (as milestones) and its
    latest score, from the events of scoring and routing."""
    if not lead_id:
        return [], None
    args = (tenant_id, lead_id)
    stages = await conn.fetch(
        f"SELECT event_id, {_US.format('occurred_at')} AS t, from_stage, to_stage"
        " FROM stage_changes WHERE tenant_id = $1 AND lead_id = $2",
        *args,
    )
    crossings = await conn.fetch(
        f"SELECT event_id, {_US.format('occurred_at')} AS t, dimension, from_value, to_value,"
        " total FROM threshold_crossings WHERE tenant_id = $1 AND lead_id = $2",
        *args,
    )
    routes = await conn.fetch(
        f"SELECT event_id, {_US.format('occurred_at')} AS t, brand_id"
        " FROM routes WHERE tenant_id = $1 AND lead_id = $2",
        *args,
    )
    latest = await conn.fetchrow(
        "SELECT total, grade, temperature, stage FROM lead_scores"
        " WHERE tenant_id = $1 AND lead_id = $2",
        *args,
    )
    out = [
        Outcome(MilestoneKind.STAGE_CHANGED, r["event_id"], r["t"], r["from_stage"], r["to_stage"])
        for r in stages
    ]
    out += [
        Outcome(
            MilestoneKind.THRESHOLD_CROSSED,
            r["event_id"],
            r["t"],
            r["from_value"],
            r["to_value"],
            r["dimension"] == 1,
            r["total"],
        )
        for r in crossings
    ]
    out += [
        Outcome(MilestoneKind.ROUTED, r["event_id"], r["t"], brand_id=r["brand_id"]) for r in routes
    ]
    return out, latest


def _stage(outcomes: list[Outcome], latest: asyncpg.Record | None) -> int:
    """The current stage: the chain of stage changes, else the latest score's."""
    changes = [
        Transition("", o.before, o.after, o.time_us, 0, o.event_id)
        for o in outcomes
        if o.kind is MilestoneKind.STAGE_CHANGED
    ]
    if changes:
        return current_stage(changes)
    return int(latest["stage"]) if latest else 0


def _encode(time_us: int, row_id: int) -> str:
    raw = json.dumps(["journey", time_us, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        kind, time_us, row_id = json.loads(raw)
        if kind == "journey" and isinstance(time_us, int) and isinstance(row_id, int):
            return time_us, row_id
    except (binascii.Error, ValueError, TypeError):
        pass
    raise InvalidArgument.field("page.page_token", "is not a page token of this timeline")
