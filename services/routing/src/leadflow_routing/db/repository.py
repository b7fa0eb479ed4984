"""Routing's SQL: explicit statements with $n parameters, on the caller's connection (the
caller owns the transaction). Every statement names the tenant."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from leadflow_routing.domain.decision import PriorRoute
from leadflow_routing.domain.snapshot import (
    Grade,
    LeadConsents,
    LeadScore,
    LeadSnapshot,
    LifecycleStage,
    Segment,
    Temperature,
    count_recent_events,
)
from leadflow_routing.domain.strategies import BrandState, OwnerLoad

# --- configuration --------------------------------------------------------------------------


async def lock_head(conn: asyncpg.Connection, tenant_id: str) -> int:
    """The tenant's active version (0: none), locked until the transaction ends."""
    await conn.execute(
        "INSERT INTO config_heads (tenant_id, active_version) VALUES ($1, 0)"
        " ON CONFLICT (tenant_id) DO NOTHING",
        tenant_id,
    )
    version: int = await conn.fetchval(
        "SELECT active_version FROM config_heads WHERE tenant_id = $1 FOR UPDATE", tenant_id
    )
    return version


async def insert_config(
    conn: asyncpg.Connection,
    tenant_id: str,
    version: int,
    payload: bytes,
    created_at: datetime,
    created_by: str,
) -> None:
    await conn.execute(
        "INSERT INTO configs (tenant_id, version, config, created_at, created_by)"
        " VALUES ($1, $2, $3, $4, $5)",
        tenant_id,
        version,
        payload,
        created_at,
        created_by,
    )
    await conn.execute(
        "UPDATE config_heads SET active_version = $2 WHERE tenant_id = $1", tenant_id, version
    )


async def active_version(conn: asyncpg.Connection, tenant_id: str) -> int:
    version = await conn.fetchval(
        "SELECT active_version FROM config_heads WHERE tenant_id = $1", tenant_id
    )
    return int(version or 0)


async def config_payload(conn: asyncpg.Connection, tenant_id: str, version: int) -> bytes | None:
    payload: bytes | None = await conn.fetchval(
        "SELECT config FROM configs WHERE tenant_id = $1 AND version = $2", tenant_id, version
    )
    return payload


# --- leads ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeadFacts:
    """What an ingest or scoring event says about a lead; None leaves a column as it is."""

    home_brand_id: str | None = None
    traits: Mapping[str, Any] | None = None
    segment: Segment | None = None
    score: LeadScore | None = None
    grade: Grade | None = None
    temperature: Temperature | None = None
    stage: LifecycleStage | None = None
    # The stage a rule's (or the initial) stage change left: see _STAGE_APPLIES.
    stage_from: LifecycleStage | None = None
    consents: Mapping[str, bool] | None = None
    seen_at: datetime | None = None


# A stage change given with the stage it left applies when it continues from the stored
# stage, or moves forward among the main stages (new ... customer, 1 to 6), as rules only
# do: replicas may apply a lead's stage changes out of order, and a change scoring announced
# before a late event replayed the lifecycle is never retracted. One given without (a
# TransitionStage call) always applies.
_STAGE_APPLIES = "($12::smallint IS NULL OR l.stage = $12 OR ($9 BETWEEN 1 AND 6 AND l.stage < $9))"

# A score replaces the stored one only when computed at or after it: replicas may apply a
# lead's scoring.score.changed messages in another order than scoring stored them.
_NEWER_SCORE = (
    "($6::jsonb IS NULL OR l.score IS NULL OR l.score ->> 'scored_at' IS NULL"
    " OR $6::jsonb ->> 'scored_at' IS NULL"
    " OR ($6::jsonb ->> 'scored_at')::timestamptz >= (l.score ->> 'scored_at')::timestamptz)"
)


async def upsert_lead(
    conn: asyncpg.Connection, tenant_id: str, lead_id: str, facts: LeadFacts
) -> None:
    score: dict[str, Any] | None = None
    if facts.score is not None:
        s = facts.score
        score = {
            "total": s.total,
            "demographic": s.demographic,
            "behavioural": s.behavioural,
            "firmographic": s.firmographic,
            "engagement": s.engagement,
            "intent": s.intent,
            "model_version": s.model_version,
            "scored_at": s.scored_at.isoformat() if s.scored_at else None,
        }
    await conn.execute(
        f"""
        INSERT INTO leads AS l (tenant_id, lead_id, home_brand_id, traits, segment, score, grade,
                           temperature, stage, consents, first_seen_at, last_activity_at)
        VALUES ($1, $2, coalesce($3, ''), coalesce($4::jsonb, '{{}}'), coalesce($5, 0), $6::jsonb,
                coalesce($7, 0), coalesce($8, 0), coalesce($9, 0), coalesce($10::jsonb, '{{}}'),
                $11, $11)
        ON CONFLICT (tenant_id, lead_id) DO UPDATE SET
            home_brand_id = coalesce(nullif($3, ''), l.home_brand_id),
            traits = CASE WHEN $4::jsonb IS NULL THEN l.traits ELSE l.traits || $4::jsonb END,
            segment = coalesce(nullif($5, 0), l.segment),
            score = CASE WHEN {_NEWER_SCORE} THEN coalesce($6::jsonb, l.score) ELSE l.score END,
            grade = CASE WHEN {_NEWER_SCORE} THEN coalesce($7, l.grade) ELSE l.grade END,
            temperature = CASE WHEN {_NEWER_SCORE} THEN coalesce($8, l.temperature)
                               ELSE l.temperature END,
            stage = CASE WHEN {_STAGE_APPLIES} THEN coalesce($9, l.stage) ELSE l.stage END,
            consents = l.consents || coalesce($10::jsonb, '{{}}'),
            first_seen_at = least(l.first_seen_at, $11),
            last_activity_at = greatest(l.last_activity_at, $11),
            updated_at = now()
        """,
        tenant_id,
        lead_id,
        facts.home_brand_id,
        dict(facts.traits) if facts.traits is not None else None,
        facts.segment.value if facts.segment is not None else None,
        score,
        facts.grade.value if facts.grade is not None else None,
        facts.temperature.value if facts.temperature is not None else None,
        facts.stage.value if facts.stage is not None else None,
        dict(facts.consents) if facts.consents is not None else None,
        facts.seen_at,
        facts.stage_from.value if facts.stage_from is not None else None,
    )


async def add_events(
    conn: asyncpg.Connection, tenant_id: str, rows: Sequence[tuple[str, str, str, str, datetime]]
) -> None:
    """(event_id, lead_id, anonymous_id, name, occurred_at) of human events; lead_id is ''
    for a visitor not known as a lead yet."""
    if not rows:
        return
    await conn.execute(
        """
        INSERT INTO lead_events (tenant_id, event_id, lead_id, anonymous_id, name, occurred_at)
        SELECT $1, e, l, a, n, t
        FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
            AS u(e, l, a, n, t)
        ON CONFLICT DO NOTHING
        """,
        tenant_id,
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
        [r[4] for r in rows],
    )
    rows = [r for r in rows if r[1]]
    await conn.execute(
        """
        UPDATE leads l SET last_activity_at = greatest(l.last_activity_at, u.t),
                           first_seen_at = least(l.first_seen_at, u.t)
        FROM (SELECT l AS lead, max(t) AS t FROM unnest($2::text[], $3::timestamptz[]) AS x(l, t)
              GROUP BY l) u
        WHERE l.tenant_id = $1 AND l.lead_id = u.lead
        """,
        tenant_id,
        [r[1] for r in rows],
        [r[4] for r in rows],
    )


async def claim_visitor_events(
    conn: asyncpg.Connection, tenant_id: str, anonymous_ids: Sequence[str], lead_id: str
) -> int:
    """The events kept under these anonymous ids become the lead's; how many moved."""
    if not anonymous_ids:
        return 0
    status = await conn.execute(
        "UPDATE lead_events SET lead_id = $3"
        " WHERE tenant_id = $1 AND anonymous_id = ANY($2::text[]) AND lead_id = ''",
        tenant_id,
        list(anonymous_ids),
        lead_id,
    )
    return int(status.split()[-1])


async def erase_visitors(
    conn: asyncpg.Connection, tenant_id: str, anonymous_ids: Sequence[str]
) -> None:
    await conn.execute(
        "DELETE FROM lead_events WHERE tenant_id = $1 AND anonymous_id = ANY($2::text[])",
        tenant_id,
        list(anonymous_ids),
    )


async def lock_lead(
    conn: asyncpg.Connection, tenant_id: str, lead_id: str, now: datetime
) -> LeadSnapshot | None:
    """The lead's snapshot as of `now`, its row locked (one decision per lead at a time)."""
    row = await conn.fetchrow(
        "SELECT * FROM leads WHERE tenant_id = $1 AND lead_id = $2 FOR UPDATE", tenant_id, lead_id
    )
    if row is None:
        return None
    return await _snapshot(conn, row, now)


async def read_lead(
    conn: asyncpg.Connection, tenant_id: str, lead_id: str, now: datetime
) -> LeadSnapshot | None:
    row = await conn.fetchrow(
        "SELECT * FROM leads WHERE tenant_id = $1 AND lead_id = $2", tenant_id, lead_id
    )
    return None if row is None else await _snapshot(conn, row, now)


async def _snapshot(conn: asyncpg.Connection, row: asyncpg.Record, now: datetime) -> LeadSnapshot:
    events = await conn.fetch(
        "SELECT name, occurred_at FROM lead_events WHERE tenant_id = $1 AND lead_id = $2"
        " AND occurred_at > $3::timestamptz - interval '30 days' AND occurred_at <= $3",
        row["tenant_id"],
        row["lead_id"],
        now,
    )
    score = None
    if row["score"] is not None:
        data = dict(row["score"])
        scored_at = data.pop("scored_at", None)
        score = LeadScore(
            **data, scored_at=datetime.fromisoformat(scored_at) if scored_at else None
        )
    consents = row["consents"]
    return LeadSnapshot(
        lead_id=row["lead_id"],
        home_brand_id=row["home_brand_id"],
        traits=row["traits"],
        segment=Segment(row["segment"]),
        score=score,
        grade=Grade(row["grade"]),
        temperature=Temperature(row["temperature"]),
        stage=LifecycleStage(row["stage"]),
        consents=LeadConsents(**{k: v for k, v in consents.items() if v is not None}),
        recent_event_counts=count_recent_events(
            ((r["name"], r["occurred_at"], False) for r in events), now
        ),
        first_seen_at=row["first_seen_at"],
        last_activity_at=row["last_activity_at"],
        as_of=now,
    )


# --- routes, brand state --------------------------------------------------------------------


async def route_history(
    conn: asyncpg.Connection, tenant_id: str, lead_id: str
) -> dict[str, PriorRoute]:
    rows = await conn.fetch(
        "SELECT dedup_key, decision_id, routed_at FROM routes"
        " WHERE tenant_id = $1 AND lead_id = $2",
        tenant_id,
        lead_id,
    )
    return {r["dedup_key"]: PriorRoute(r["decision_id"], r["routed_at"]) for r in rows}


async def insert_routes(
    conn: asyncpg.Connection,
    tenant_id: str,
    lead_id: str,
    keys: Iterable[str],
    decision_id: str,
    at: datetime,
) -> None:
    await conn.executemany(
        "INSERT INTO routes (tenant_id, lead_id, dedup_key, decision_id, routed_at)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        [(tenant_id, lead_id, key, decision_id, at) for key in keys],
    )


async def brand_states(
    conn: asyncpg.Connection,
    tenant_id: str,
    brand_ids: Sequence[str],
    day_start: datetime,
    *,
    lock: bool,
) -> dict[str, BrandState]:
    """Each brand's shared state with every owner's load counted from the assignments. With
    `lock`, the rows are created when missing and locked in brand id order (no deadlock
    between replicas) until the transaction ends."""
    if not brand_ids:
        return {}
    if lock:
        await conn.execute(
            "INSERT INTO brand_state (tenant_id, brand_id) SELECT $1, unnest($2::text[])"
            " ON CONFLICT DO NOTHING",
            tenant_id,
            list(brand_ids),
        )
    rows = await conn.fetch(
        "SELECT brand_id, turn, current_weights FROM brand_state"
        " WHERE tenant_id = $1 AND brand_id = ANY($2::text[]) ORDER BY brand_id"
        + (" FOR UPDATE" if lock else ""),
        tenant_id,
        list(brand_ids),
    )
    loads = await conn.fetch(
        """
        SELECT brand_id, owner_id,
               count(*) FILTER (WHERE assigned_at >= $3) AS today,
               count(*) FILTER (WHERE state = 1) AS open
        FROM assignments
        WHERE tenant_id = $1 AND brand_id = ANY($2::text[]) AND (assigned_at >= $3 OR state = 1)
        GROUP BY brand_id, owner_id
        """,
        tenant_id,
        list(brand_ids),
        day_start,
    )
    by_brand: dict[str, dict[str, OwnerLoad]] = {}
    for r in loads:
        by_brand.setdefault(r["brand_id"], {})[r["owner_id"]] = OwnerLoad(r["today"], r["open"])
    states = {
        r["brand_id"]: BrandState(
            turn=r["turn"],
            current_weights=r["current_weights"],
            loads=by_brand.get(r["brand_id"], {}),
        )
        for r in rows
    }
    for brand_id in brand_ids:  # never routed to yet (read-only callers)
        states.setdefault(brand_id, BrandState(loads=by_brand.get(brand_id, {})))
    return states


async def save_brand_states(
    conn: asyncpg.Connection, tenant_id: str, states: Mapping[str, BrandState]
) -> None:
    await conn.executemany(
        "UPDATE brand_state SET turn = $3, current_weights = $4::jsonb"
        " WHERE tenant_id = $1 AND brand_id = $2",
        [(tenant_id, brand_id, s.turn, dict(s.current_weights)) for brand_id, s in states.items()],
    )


# --- decisions ------------------------------------------------------------------------------


async def insert_decision(
    conn: asyncpg.Connection,
    tenant_id: str,
    decision_id: str,
    lead_id: str,
    request_id: str | None,
    decided_at: datetime,
    record: bytes,
    record_format: int,
) -> None:
    await conn.execute(
        "INSERT INTO decisions (tenant_id, decision_id, lead_id, request_id, decided_at, record,"
        " record_format) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        tenant_id,
        decision_id,
        lead_id,
        request_id,
        decided_at,
        record,
        record_format,
    )


async def decision_by_request(
    conn: asyncpg.Connection, tenant_id: str, request_id: str
) -> tuple[bytes, int] | None:
    """(record, record_format) of the decision a RouteLead request made."""
    row = await conn.fetchrow(
        "SELECT record, record_format FROM decisions WHERE tenant_id = $1 AND request_id = $2",
        tenant_id,
        request_id,
    )
    return None if row is None else (row["record"], row["record_format"])


# --- assignments ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AssignmentRow:
    assignment_id: str
    lead_id: str
    brand_id: str
    owner_id: str
    owner_name: str
    owner_email: str
    state: int
    decision_id: str
    rule_id: str
    strategy: int
    fixed_owner_id: str
    trigger: int
    config_version: int
    assigned_at: datetime
    acknowledge_by: datetime | None
    acknowledged_at: datetime | None = None
    breached_at: datetime | None = None
    previous_assignment_id: str = ""
    next_assignment_id: str = ""


_ASSIGNMENT_COLUMNS = (
    "assignment_id, lead_id, brand_id, owner_id, owner_name, owner_email, state, decision_id,"
    " rule_id, strategy, fixed_owner_id, trigger, config_version, assigned_at, acknowledge_by,"
    " acknowledged_at, breached_at, previous_assignment_id, next_assignment_id"
)


def _assignment(row: asyncpg.Record) -> AssignmentRow:
    return AssignmentRow(**dict(row))


async def insert_assignment(conn: asyncpg.Connection, tenant_id: str, a: AssignmentRow) -> None:
    await conn.execute(
        f"INSERT INTO assignments (tenant_id, {_ASSIGNMENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5,"
        " $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
        tenant_id,
        a.assignment_id,
        a.lead_id,
        a.brand_id,
        a.owner_id,
        a.owner_name,
        a.owner_email,
        a.state,
        a.decision_id,
        a.rule_id,
        a.strategy,
        a.fixed_owner_id,
        a.trigger,
        a.config_version,
        a.assigned_at,
        a.acknowledge_by,
        a.acknowledged_at,
        a.breached_at,
        a.previous_assignment_id,
        a.next_assignment_id,
    )


async def lock_assignment(
    conn: asyncpg.Connection, tenant_id: str, assignment_id: str
) -> AssignmentRow | None:
    row = await conn.fetchrow(
        f"SELECT {_ASSIGNMENT_COLUMNS} FROM assignments"
        " WHERE tenant_id = $1 AND assignment_id = $2 FOR UPDATE",
        tenant_id,
        assignment_id,
    )
    return None if row is None else _assignment(row)


async def acknowledge(
    conn: asyncpg.Connection, tenant_id: str, assignment_id: str, at: datetime
) -> None:
    await conn.execute(
        "UPDATE assignments SET state = 2, acknowledged_at = coalesce(acknowledged_at, $3)"
        " WHERE tenant_id = $1 AND assignment_id = $2",
        tenant_id,
        assignment_id,
        at,
    )


async def claim_breached(
    conn: asyncpg.Connection, now: datetime, limit: int
) -> list[tuple[str, AssignmentRow]]:
    """ASSIGNED assignments past their deadline, locked (skipping rows another replica holds)."""
    rows = await conn.fetch(
        f"SELECT tenant_id, {_ASSIGNMENT_COLUMNS} FROM assignments"
        " WHERE state = 1 AND acknowledge_by <= $1 ORDER BY acknowledge_by LIMIT $2"
        " FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )
    return [(r["tenant_id"], _assignment_without_tenant(r)) for r in rows]


def _assignment_without_tenant(row: asyncpg.Record) -> AssignmentRow:
    data = dict(row)
    data.pop("tenant_id")
    return AssignmentRow(**data)


async def mark_breached(
    conn: asyncpg.Connection,
    tenant_id: str,
    assignment_id: str,
    state: int,
    at: datetime,
    next_assignment_id: str,
) -> None:
    await conn.execute(
        "UPDATE assignments SET state = $3, breached_at = $4, next_assignment_id = $5"
        " WHERE tenant_id = $1 AND assignment_id = $2",
        tenant_id,
        assignment_id,
        state,
        at,
        next_assignment_id,
    )


async def breached_owners(conn: asyncpg.Connection, tenant_id: str, assignment_id: str) -> set[str]:
    """Owners who breached along the chain of assignments ending at this one."""
    rows = await conn.fetch(
        """
        WITH RECURSIVE chain AS (
            SELECT assignment_id, owner_id, previous_assignment_id FROM assignments
            WHERE tenant_id = $1 AND assignment_id = $2
            UNION ALL
            SELECT a.assignment_id, a.owner_id, a.previous_assignment_id
            FROM assignments a JOIN chain c ON a.assignment_id = c.previous_assignment_id
            WHERE a.tenant_id = $1
        )
        SELECT owner_id FROM chain
        """,
        tenant_id,
        assignment_id,
    )
    return {r["owner_id"] for r in rows}


async def list_assignments(
    conn: asyncpg.Connection,
    tenant_id: str,
    *,
    brand_id: str,
    owner_id: str,
    states: Sequence[int],
    lead_id: str,
    start: datetime | None,
    end: datetime | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[AssignmentRow]:
    rows = await conn.fetch(
        f"""
        SELECT {_ASSIGNMENT_COLUMNS} FROM assignments
        WHERE tenant_id = $1
          AND ($2 = '' OR brand_id = $2) AND ($3 = '' OR owner_id = $3)
          AND (cardinality($4::smallint[]) = 0 OR state = ANY($4::smallint[]))
          AND ($5 = '' OR lead_id = $5)
          AND ($6::timestamptz IS NULL OR assigned_at >= $6)
          AND ($7::timestamptz IS NULL OR assigned_at < $7)
          AND ($8::timestamptz IS NULL OR (assigned_at, assignment_id) < ($8, $9))
        ORDER BY assigned_at DESC, assignment_id DESC
        LIMIT $10
        """,
        tenant_id,
        brand_id,
        owner_id,
        list(states),
        lead_id,
        start,
        end,
        after[0] if after else None,
        after[1] if after else "",
        limit,
    )
    return [_assignment(r) for r in rows]


# --- enrolments -----------------------------------------------------------------------------


async def active_enrollment(
    conn: asyncpg.Connection, tenant_id: str, lead_id: str, sequence_id: str, brand_id: str
) -> str | None:
    value: str | None = await conn.fetchval(
        "SELECT enrollment_id FROM enrollments WHERE tenant_id = $1 AND lead_id = $2"
        " AND sequence_id = $3 AND brand_id = $4 AND state = 1",
        tenant_id,
        lead_id,
        sequence_id,
        brand_id,
    )
    return value


async def insert_enrollment(
    conn: asyncpg.Connection,
    tenant_id: str,
    *,
    enrollment_id: str,
    lead_id: str,
    brand_id: str,
    sequence_id: str,
    segment: int,
    channels: Sequence[int],
    enrolled_at: datetime,
    decision_id: str,
    config_version: int,
    steps: Sequence[tuple[int, int, str, int, datetime]],
) -> None:
    await conn.execute(
        "INSERT INTO enrollments (tenant_id, enrollment_id, lead_id, brand_id, sequence_id,"
        " segment, state, channels, enrolled_at, decision_id, config_version)"
        " VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9, $10)",
        tenant_id,
        enrollment_id,
        lead_id,
        brand_id,
        sequence_id,
        segment,
        list(channels),
        enrolled_at,
        decision_id,
        config_version,
    )
    await conn.executemany(
        "INSERT INTO enrollment_steps (tenant_id, enrollment_id, step_index, day_offset, template,"
        " channel, due_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [(tenant_id, enrollment_id, *step) for step in steps],
    )


async def active_enrollments_of(
    conn: asyncpg.Connection, tenant_id: str, lead_ids: Sequence[str]
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT enrollment_id, lead_id, channels FROM enrollments"
        " WHERE tenant_id = $1 AND lead_id = ANY($2::text[]) AND state = 1 FOR UPDATE",
        tenant_id,
        list(lead_ids),
    )
    return rows


async def stop_enrollments(
    conn: asyncpg.Connection,
    tenant_id: str,
    enrollment_ids: Sequence[str],
    reason: int,
    at: datetime,
) -> None:
    await conn.execute(
        "UPDATE enrollments SET state = 3, stop_reason = $3, ended_at = $4"
        " WHERE tenant_id = $1 AND enrollment_id = ANY($2::text[]) AND state = 1",
        tenant_id,
        list(enrollment_ids),
        reason,
        at,
    )


async def claim_due_steps(
    conn: asyncpg.Connection, now: datetime, limit: int
) -> list[asyncpg.Record]:
    """Unsent steps of active enrolments that are due, locked (SKIP LOCKED: each step is
    claimed by one replica; the caller marks it sent in the same transaction)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        SELECT s.tenant_id, s.enrollment_id, s.step_index, s.day_offset, s.template, s.channel,
               s.due_at, e.lead_id, e.brand_id, e.sequence_id, e.segment, e.decision_id,
               e.enrolled_at,
               (SELECT count(*) FROM enrollment_steps c
                 WHERE c.tenant_id = s.tenant_id AND c.enrollment_id = s.enrollment_id) AS steps
        FROM enrollment_steps s
        JOIN enrollments e ON e.tenant_id = s.tenant_id AND e.enrollment_id = s.enrollment_id
        WHERE s.sent_at IS NULL AND s.due_at <= $1 AND e.state = 1
        ORDER BY s.due_at
        LIMIT $2
        FOR UPDATE OF s SKIP LOCKED
        """,
        now,
        limit,
    )
    return rows


async def mark_step_sent(
    conn: asyncpg.Connection, tenant_id: str, enrollment_id: str, step_index: int, at: datetime
) -> None:
    await conn.execute(
        "UPDATE enrollment_steps SET sent_at = $4"
        " WHERE tenant_id = $1 AND enrollment_id = $2 AND step_index = $3",
        tenant_id,
        enrollment_id,
        step_index,
        at,
    )


async def complete_finished_enrollments(
    conn: asyncpg.Connection, tenant_id: str, enrollment_id: str, at: datetime
) -> None:
    await conn.execute(
        "UPDATE enrollments SET state = 2, ended_at = $3 WHERE tenant_id = $1"
        " AND enrollment_id = $2 AND state = 1 AND NOT EXISTS (SELECT 1 FROM enrollment_steps s"
        " WHERE s.tenant_id = $1 AND s.enrollment_id = $2 AND s.sent_at IS NULL)",
        tenant_id,
        enrollment_id,
        at,
    )


async def current_owner(
    conn: asyncpg.Connection, tenant_id: str, lead_id: str, brand_id: str
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT owner_id, owner_name, owner_email FROM assignments WHERE tenant_id = $1"
        " AND lead_id = $2 AND brand_id = $3 AND state IN (1, 2, 3)"
        " ORDER BY assigned_at DESC LIMIT 1",
        tenant_id,
        lead_id,
        brand_id,
    )
    return row


async def list_enrollments(
    conn: asyncpg.Connection,
    tenant_id: str,
    *,
    lead_id: str,
    sequence_id: str,
    states: Sequence[int],
    stop_reasons: Sequence[int],
    brand_id: str,
    start: datetime | None,
    end: datetime | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> tuple[list[asyncpg.Record], dict[str, list[asyncpg.Record]]]:
    rows = await conn.fetch(
        """
        SELECT * FROM enrollments
        WHERE tenant_id = $1
          AND ($2 = '' OR lead_id = $2) AND ($3 = '' OR sequence_id = $3)
          AND (cardinality($4::smallint[]) = 0 OR state = ANY($4::smallint[]))
          AND (cardinality($5::smallint[]) = 0 OR stop_reason = ANY($5::smallint[]))
          AND ($6 = '' OR brand_id = $6)
          AND ($7::timestamptz IS NULL OR enrolled_at >= $7)
          AND ($8::timestamptz IS NULL OR enrolled_at < $8)
          AND ($9::timestamptz IS NULL OR (enrolled_at, enrollment_id) < ($9, $10))
        ORDER BY enrolled_at DESC, enrollment_id DESC
        LIMIT $11
        """,
        tenant_id,
        lead_id,
        sequence_id,
        list(states),
        list(stop_reasons),
        brand_id,
        start,
        end,
        after[0] if after else None,
        after[1] if after else "",
        limit,
    )
    steps: dict[str, list[asyncpg.Record]] = {}
    if rows:
        for s in await conn.fetch(
            "SELECT * FROM enrollment_steps WHERE tenant_id = $1"
            " AND enrollment_id = ANY($2::text[]) ORDER BY enrollment_id, step_index",
            tenant_id,
            [r["enrollment_id"] for r in rows],
        ):
            steps.setdefault(s["enrollment_id"], []).append(s)
    return list(rows), steps


# --- deliveries -----------------------------------------------------------------------------


async def insert_delivery(
    conn: asyncpg.Connection,
    tenant_id: str,
    delivery_id: str,
    lead_id: str,
    brand_id: str,
    sink: bytes,
    body: bytes,
    at: datetime,
    traceparent: str = "",
) -> None:
    await conn.execute(
        "INSERT INTO deliveries (tenant_id, delivery_id, lead_id, brand_id, sink, body,"
        " next_attempt_at, created_at, traceparent) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)"
        " ON CONFLICT DO NOTHING",
        tenant_id,
        delivery_id,
        lead_id,
        brand_id,
        sink,
        body,
        at,
        traceparent,
    )
    await conn.execute("SELECT pg_notify('leadflow_routing_deliveries', '')")


async def lease_deliveries(
    conn: asyncpg.Connection, now: datetime, lease_seconds: float, limit: int
) -> list[asyncpg.Record]:
    """Due deliveries, leased to this worker for `lease_seconds` (committed at once, so the
    HTTP call runs outside any transaction; an expired lease is taken over)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        UPDATE deliveries d SET leased_until = $1 + make_interval(secs => $2)
        FROM (SELECT tenant_id, delivery_id FROM deliveries
              WHERE state = 'pending' AND next_attempt_at <= $1
                AND (leased_until IS NULL OR leased_until <= $1)
              ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) due
        WHERE d.tenant_id = due.tenant_id AND d.delivery_id = due.delivery_id
        RETURNING d.tenant_id, d.delivery_id, d.lead_id, d.brand_id, d.sink, d.body, d.attempts,
            d.traceparent
        """,
        now,
        lease_seconds,
        limit,
    )
    return rows


async def finish_delivery(
    conn: asyncpg.Connection,
    tenant_id: str,
    delivery_id: str,
    *,
    state: str,
    attempts: int,
    next_attempt_at: datetime | None,
    error: str,
    at: datetime,
) -> None:
    await conn.execute(
        """
        UPDATE deliveries SET state = $3, attempts = $4,
            next_attempt_at = coalesce($5, next_attempt_at), leased_until = NULL,
            last_error = $6,
            delivered_at = CASE WHEN $3::text = 'delivered' THEN $7::timestamptz END
        WHERE tenant_id = $1 AND delivery_id = $2
        """,
        tenant_id,
        delivery_id,
        state,
        attempts,
        next_attempt_at,
        error,
        at,
    )


# --- retention ------------------------------------------------------------------------------

RETENTION_DELETES = {
    "lead_events": "DELETE FROM lead_events WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM lead_events WHERE tenant_id = $1 AND occurred_at < $2 LIMIT $3))",
    "decisions": "DELETE FROM decisions WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM decisions WHERE tenant_id = $1 AND decided_at < $2 LIMIT $3))",
    "deliveries": "DELETE FROM deliveries WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM deliveries WHERE tenant_id = $1 AND state <> 'pending'"
    " AND created_at < $2 LIMIT $3))",
    "outbox": "DELETE FROM outbox WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM outbox WHERE tenant_id = $1 AND published_at < $2 LIMIT $3))",
}
"""Statements ($1 tenant, $2 cutoff, $3 slice size) deleting one slice of expired rows."""


# --- erasure --------------------------------------------------------------------------------


async def erase_leads(
    conn: asyncpg.Connection, tenant_id: str, lead_ids: Sequence[str], pseudonyms: Sequence[str]
) -> list[str]:
    """Deletes what names the leads; assignments and enrolments keep their counts under a
    pseudonym. Returns the active enrolments that were stopped."""
    ids = list(lead_ids)
    stopped = await conn.fetch(
        "SELECT enrollment_id FROM enrollments WHERE tenant_id = $1 AND lead_id = ANY($2::text[])"
        " AND state = 1",
        tenant_id,
        ids,
    )
    for table in ("leads", "lead_events", "decisions", "routes", "deliveries"):
        await conn.execute(
            f"DELETE FROM {table} WHERE tenant_id = $1 AND lead_id = ANY($2::text[])",
            tenant_id,
            ids,
        )
    for table in ("assignments", "enrollments"):
        await conn.execute(
            f"UPDATE {table} t SET lead_id = p.pseudonym"
            " FROM unnest($2::text[], $3::text[]) AS p(lead_id, pseudonym)"
            " WHERE t.tenant_id = $1 AND t.lead_id = p.lead_id",
            tenant_id,
            ids,
            list(pseudonyms),
        )
    return [r["enrollment_id"] for r in stopped]
