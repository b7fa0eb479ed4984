"""SQL of the scoring schema. Every function takes the caller's connection (and so its
transaction) and works set-based: one statement per batch of leads or events, never one per
row. Every statement filters by tenant."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg

from leadflow_scoring.domain.features import ActivityEvent
from leadflow_scoring.domain.lifecycle import (
    EventKey,
    LifecycleStage,
    Transition,
    TransitionTrigger,
)

# Leads ----------------------------------------------------------------------------------

_LEAD_COLUMNS = (
    "lead_id, features, stage, stage_entered_at, stage_entered_by, visit_touchpoints,"
    " visit_touchpoint_count, first_seen_at, first_seen_event_id, total, grade, temperature,"
    " computed_at, revision"
)


async def lock_leads(
    conn: asyncpg.Connection,
    tenant_id: str,
    lead_ids: Sequence[str],
    *,
    create: bool,
    columns: str = _LEAD_COLUMNS,
) -> tuple[list[asyncpg.Record], set[str]]:
    """Lock the leads' rows (creating the missing ones when `create`), in lead id order so
    that concurrent transactions over overlapping leads queue instead of deadlocking.
    Returns the rows and the ids created by this call (their `features` are NULL)."""
    ids = sorted(set(lead_ids))
    created: set[str] = set()
    if create:
        rows = await conn.fetch(
            "INSERT INTO leads (tenant_id, lead_id) SELECT $1, l FROM unnest($2::text[]) AS l"
            " ORDER BY l ON CONFLICT DO NOTHING RETURNING lead_id",
            tenant_id,
            ids,
        )
        created = {r["lead_id"] for r in rows}
    locked = await conn.fetch(
        f"SELECT {columns} FROM leads WHERE tenant_id = $1 AND lead_id = ANY($2::text[])"
        " ORDER BY lead_id FOR UPDATE",
        tenant_id,
        ids,
    )
    return locked, created


async def read_leads(
    conn: asyncpg.Connection, tenant_id: str, lead_ids: Sequence[str]
) -> list[asyncpg.Record]:
    """The leads' rows as last committed, unlocked (those with a score: a row another
    transaction just inserted has none yet)."""
    return await conn.fetch(
        f"SELECT {_LEAD_COLUMNS} FROM leads WHERE tenant_id = $1 AND lead_id = ANY($2::text[])"
        " AND features IS NOT NULL",
        tenant_id,
        list(lead_ids),
    )


async def lock_revisions(
    conn: asyncpg.Connection, tenant_id: str, lead_ids: Sequence[str]
) -> tuple[list[tuple[str, int]], set[str]]:
    """lock_leads for a change computed before locking: (lead id, revision) of each lead
    and the ids created by this call."""
    rows, created = await lock_leads(
        conn, tenant_id, lead_ids, create=True, columns="lead_id, revision"
    )
    return [(r["lead_id"], r["revision"]) for r in rows], created


class LeadRow(NamedTuple):
    """What a change writes back to a lead's row."""

    lead_id: str
    features: str  # JSON
    stage: str
    stage_entered_at: datetime
    stage_entered_by: str
    visit_touchpoints: str  # JSON
    visit_touchpoint_count: int
    first_seen_at: datetime
    first_seen_event_id: str
    total: float
    undecayed_total: float
    grade: str
    temperature: str
    model_version: int
    computed_at: datetime
    home_brand_id: str
    last_activity_at: datetime | None
    score: bytes
    next_check_at: datetime | None


async def save_leads(conn: asyncpg.Connection, tenant_id: str, rows: Sequence[LeadRow]) -> None:
    if not rows:
        return
    columns = list(zip(*rows, strict=True))
    await conn.execute(
        "UPDATE leads AS l SET features = u.features::jsonb, stage = u.stage,"
        " stage_entered_at = u.stage_entered_at, stage_entered_by = u.stage_entered_by,"
        " visit_touchpoints = u.visit_touchpoints::jsonb,"
        " visit_touchpoint_count = u.visit_touchpoint_count, first_seen_at = u.first_seen_at,"
        " first_seen_event_id = u.first_seen_event_id, total = u.total,"
        " undecayed_total = u.undecayed_total, grade = u.grade, temperature = u.temperature,"
        " model_version = u.model_version, computed_at = u.computed_at,"
        " home_brand_id = u.home_brand_id, last_activity_at = u.last_activity_at,"
        " score = u.score, next_check_at = u.next_check_at, revision = l.revision + 1,"
        " updated_at = now()"
        " FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[],"
        " $7::text[], $8::int[], $9::timestamptz[], $10::text[], $11::float8[],"
        " $12::float8[], $13::text[], $14::text[], $15::int8[], $16::timestamptz[],"
        " $17::text[], $18::timestamptz[], $19::bytea[], $20::timestamptz[])"
        " AS u(lead_id, features, stage, stage_entered_at, stage_entered_by,"
        " visit_touchpoints, visit_touchpoint_count, first_seen_at, first_seen_event_id,"
        " total, undecayed_total, grade, temperature, model_version, computed_at,"
        " home_brand_id, last_activity_at, score, next_check_at)"
        " WHERE l.tenant_id = $1 AND l.lead_id = u.lead_id",
        tenant_id,
        *[list(c) for c in columns],
    )


async def score_row(conn: asyncpg.Connection, tenant_id: str, lead_id: str) -> bytes | None:
    return await conn.fetchval(
        "SELECT score FROM leads WHERE tenant_id = $1 AND lead_id = $2", tenant_id, lead_id
    )


async def existing_leads(
    conn: asyncpg.Connection, tenant_id: str, lead_ids: Sequence[str]
) -> set[str]:
    rows = await conn.fetch(
        "SELECT lead_id FROM leads WHERE tenant_id = $1 AND lead_id = ANY($2::text[])",
        tenant_id,
        list(lead_ids),
    )
    return {r["lead_id"] for r in rows}


async def count_leads(conn: asyncpg.Connection, tenant_id: str) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM leads WHERE tenant_id = $1", tenant_id))


async def lead_ids_after(
    conn: asyncpg.Connection, tenant_id: str, after: str, limit: int
) -> list[str]:
    rows = await conn.fetch(
        "SELECT lead_id FROM leads WHERE tenant_id = $1 AND lead_id > $2 ORDER BY lead_id LIMIT $3",
        tenant_id,
        after,
        limit,
    )
    return [r["lead_id"] for r in rows]


async def due_leads(conn: asyncpg.Connection, now: datetime, limit: int) -> list[tuple[str, str]]:
    """(tenant, lead) whose decay check is due, locked (skipping leads another transaction
    holds: it rescoring them sets a new check time anyway)."""
    rows = await conn.fetch(
        "SELECT tenant_id, lead_id FROM leads WHERE next_check_at <= $1"
        " ORDER BY next_check_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )
    return [(r["tenant_id"], r["lead_id"]) for r in rows]


# Visitors -------------------------------------------------------------------------------


async def lock_visitors(
    conn: asyncpg.Connection, tenant_id: str, anonymous_ids: Sequence[str], *, create: bool
) -> tuple[list[asyncpg.Record], set[str]]:
    ids = sorted(set(anonymous_ids))
    created: set[str] = set()
    if create:
        rows = await conn.fetch(
            "INSERT INTO visitors (tenant_id, anonymous_id)"
            " SELECT $1, a FROM unnest($2::text[]) AS a ORDER BY a"
            " ON CONFLICT DO NOTHING RETURNING anonymous_id",
            tenant_id,
            ids,
        )
        created = {r["anonymous_id"] for r in rows}
    locked = await conn.fetch(
        "SELECT anonymous_id, features, first_seen_at, first_event_id FROM visitors"
        " WHERE tenant_id = $1 AND anonymous_id = ANY($2::text[])"
        " ORDER BY anonymous_id FOR UPDATE",
        tenant_id,
        ids,
    )
    return locked, created


async def visitor_first_seen(
    conn: asyncpg.Connection, tenant_id: str, anonymous_id: str
) -> tuple[datetime, str] | None:
    row = await conn.fetchrow(
        "SELECT first_seen_at, first_event_id FROM visitors"
        " WHERE tenant_id = $1 AND anonymous_id = $2",
        tenant_id,
        anonymous_id,
    )
    if row is None or row["first_seen_at"] is None:
        return None
    return row["first_seen_at"], row["first_event_id"]


async def save_visitors(
    conn: asyncpg.Connection,
    tenant_id: str,
    rows: Sequence[tuple[str, str, datetime | None, str]],
) -> None:
    """(anonymous id, features JSON, first seen at, first event id)."""
    if not rows:
        return
    columns = list(zip(*rows, strict=True))
    await conn.execute(
        "UPDATE visitors AS v SET features = u.features::jsonb,"
        " first_seen_at = u.first_seen_at, first_event_id = u.first_event_id, updated_at = now()"
        " FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::text[])"
        " AS u(anonymous_id, features, first_seen_at, first_event_id)"
        " WHERE v.tenant_id = $1 AND v.anonymous_id = u.anonymous_id",
        tenant_id,
        *[list(c) for c in columns],
    )


async def delete_visitor(conn: asyncpg.Connection, tenant_id: str, anonymous_id: str) -> None:
    await conn.execute(
        "DELETE FROM visitors WHERE tenant_id = $1 AND anonymous_id = $2", tenant_id, anonymous_id
    )


# Aliases --------------------------------------------------------------------------------


async def leads_of(
    conn: asyncpg.Connection, tenant_id: str, anonymous_ids: Sequence[str]
) -> dict[str, str]:
    """anonymous id -> lead id, for the ids already aliased."""
    if not anonymous_ids:
        return {}
    rows = await conn.fetch(
        "SELECT anonymous_id, lead_id FROM aliases"
        " WHERE tenant_id = $1 AND anonymous_id = ANY($2::text[])",
        tenant_id,
        list(anonymous_ids),
    )
    return {r["anonymous_id"]: r["lead_id"] for r in rows}


async def add_alias(
    conn: asyncpg.Connection, tenant_id: str, anonymous_id: str, lead_id: str
) -> str:
    """Record the alias; returns the lead the anonymous id belongs to (the first one wins)."""
    await conn.execute(
        "INSERT INTO aliases (tenant_id, anonymous_id, lead_id) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING",
        tenant_id,
        anonymous_id,
        lead_id,
    )
    owner: str = await conn.fetchval(
        "SELECT lead_id FROM aliases WHERE tenant_id = $1 AND anonymous_id = $2",
        tenant_id,
        anonymous_id,
    )
    return owner


# Events ---------------------------------------------------------------------------------


async def insert_events(
    conn: asyncpg.Connection,
    tenant_id: str,
    rows: Sequence[tuple[str, str | None, str | None, str, datetime, str | None]],
) -> set[str]:
    """(event id, lead id, anonymous id, type, occurred at, channel); returns the ids that
    were new (the others were counted before)."""
    if not rows:
        return set()
    columns = list(zip(*sorted(rows, key=lambda r: r[0]), strict=True))
    inserted = await conn.fetch(
        "INSERT INTO events (tenant_id, event_id, lead_id, anonymous_id, event_type,"
        " occurred_at, channel)"
        " SELECT $1, e.event_id, e.lead_id, e.anonymous_id, e.event_type, e.occurred_at,"
        " e.channel FROM unnest($2::text[], $3::text[], $4::text[], $5::text[],"
        " $6::timestamptz[], $7::text[]) AS e(event_id, lead_id, anonymous_id, event_type,"
        " occurred_at, channel)"
        " ON CONFLICT DO NOTHING RETURNING event_id",
        tenant_id,
        *[list(c) for c in columns],
    )
    return {r["event_id"] for r in inserted}


def _activity(row: asyncpg.Record) -> ActivityEvent:
    return ActivityEvent(
        row["event_id"], row["event_type"], row["occurred_at"], channel=row["channel"]
    )


async def lead_events(
    conn: asyncpg.Connection, tenant_id: str, lead_ids: Sequence[str]
) -> dict[str, list[ActivityEvent]]:
    """Every counted event of the leads (for rebuilding features)."""
    rows = await conn.fetch(
        "SELECT lead_id, event_id, event_type, occurred_at, channel FROM events"
        " WHERE tenant_id = $1 AND lead_id = ANY($2::text[])",
        tenant_id,
        list(lead_ids),
    )
    out: dict[str, list[ActivityEvent]] = {}
    for r in rows:
        out.setdefault(r["lead_id"], []).append(_activity(r))
    return out


async def visitor_events(
    conn: asyncpg.Connection,
    tenant_id: str,
    anonymous_ids: Sequence[str],
    *,
    types: Sequence[str] | None = None,
) -> dict[str, list[ActivityEvent]]:
    """Counted events of visitors not yet given to a lead; with `types`, only those types
    and touchpoints. Oldest first."""
    rows = await conn.fetch(
        "SELECT anonymous_id, event_id, event_type, occurred_at, channel FROM events"
        " WHERE tenant_id = $1 AND anonymous_id = ANY($2::text[]) AND lead_id IS NULL"
        " AND ($3::text[] IS NULL OR channel IS NOT NULL OR event_type = ANY($3::text[]))"
        " ORDER BY occurred_at, event_id",
        tenant_id,
        list(anonymous_ids),
        None if types is None else list(types),
    )
    out: dict[str, list[ActivityEvent]] = {}
    for r in rows:
        out.setdefault(r["anonymous_id"], []).append(_activity(r))
    return out


async def lifecycle_events(
    conn: asyncpg.Connection,
    tenant_id: str,
    since: Sequence[tuple[str, datetime]],
    *,
    types: Sequence[str],
) -> dict[str, list[tuple[EventKey, str, str | None]]]:
    """Per lead, its events that shape the lifecycle (touchpoints and `types`) from the
    given time on: ((occurred_at, event_id), type, channel), unordered (the caller orders
    them by key in Python, whose string order the SQL collation need not share)."""
    if not since:
        return {}
    rows = await conn.fetch(
        "SELECT e.lead_id, e.event_id, e.event_type, e.occurred_at, e.channel"
        " FROM unnest($2::text[], $3::timestamptz[]) AS b(lead_id, since)"
        " JOIN events e ON e.tenant_id = $1 AND e.lead_id = b.lead_id"
        " AND e.occurred_at >= b.since"
        " WHERE e.channel IS NOT NULL OR e.event_type = ANY($4::text[])",
        tenant_id,
        [lead for lead, _ in since],
        [at for _, at in since],
        list(types),
    )
    out: dict[str, list[tuple[EventKey, str, str | None]]] = {}
    for r in rows:
        out.setdefault(r["lead_id"], []).append(
            ((r["occurred_at"], r["event_id"]), r["event_type"], r["channel"])
        )
    return out


async def reassign_events(
    conn: asyncpg.Connection, tenant_id: str, anonymous_id: str, lead_id: str
) -> int:
    status = await conn.execute(
        "UPDATE events SET lead_id = $3 WHERE tenant_id = $1 AND anonymous_id = $2"
        " AND lead_id IS NULL",
        tenant_id,
        anonymous_id,
        lead_id,
    )
    return int(status.split()[-1])


# History and transitions ----------------------------------------------------------------


class HistoryRow(NamedTuple):
    lead_id: str
    computed_at: datetime
    total: float
    undecayed_total: float
    components: bytes
    grade: str
    temperature: str
    stage: str
    model_version: int
    cause: str
    causation_id: str


async def insert_history(
    conn: asyncpg.Connection, tenant_id: str, rows: Sequence[HistoryRow]
) -> None:
    if not rows:
        return
    columns = list(zip(*rows, strict=True))
    await conn.execute(
        "INSERT INTO score_history (tenant_id, lead_id, computed_at, total, undecayed_total,"
        " components, grade, temperature, stage, model_version, cause, causation_id)"
        " SELECT $1, h.* FROM unnest($2::text[], $3::timestamptz[], $4::float8[],"
        " $5::float8[], $6::bytea[], $7::text[], $8::text[], $9::text[], $10::int8[],"
        " $11::text[], $12::text[])"
        " AS h(lead_id, computed_at, total, undecayed_total, components, grade, temperature,"
        " stage, model_version, cause, causation_id)",
        tenant_id,
        *[list(c) for c in columns],
    )


async def history_page(
    conn: asyncpg.Connection,
    tenant_id: str,
    lead_id: str,
    *,
    start: datetime | None,
    end: datetime | None,
    before: tuple[datetime, int] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Newest first; `before` is the (computed_at, id) of the last entry already read."""
    return await conn.fetch(
        "SELECT id, computed_at, total, undecayed_total, components, grade, temperature,"
        " stage, model_version, cause, causation_id FROM score_history"
        " WHERE tenant_id = $1 AND lead_id = $2"
        " AND ($3::timestamptz IS NULL OR computed_at >= $3)"
        " AND ($4::timestamptz IS NULL OR computed_at < $4)"
        " AND ($5::timestamptz IS NULL OR (computed_at, id) < ($5, $6::int8))"
        " ORDER BY computed_at DESC, id DESC LIMIT $7",
        tenant_id,
        lead_id,
        start,
        end,
        before[0] if before else None,
        before[1] if before else None,
        limit,
    )


class TransitionRow(NamedTuple):
    transition_id: str
    lead_id: str
    from_stage: str | None
    to_stage: str
    transitioned_at: datetime
    reason: str
    trigger: str
    triggering_event_id: str
    actor: str
    time_in_previous_stage: Any  # timedelta
    touchpoint_event_ids: list[str]
    touchpoint_count: int


async def insert_transitions(
    conn: asyncpg.Connection, tenant_id: str, rows: Sequence[TransitionRow]
) -> None:
    if not rows:
        return
    # One row per statement for the arrays of ids (unnest would flatten text[][]); in
    # executemany they are pipelined in one round trip.
    await conn.executemany(
        "INSERT INTO transitions (tenant_id, transition_id, lead_id, from_stage, to_stage,"
        " transitioned_at, reason, trigger, triggering_event_id, actor,"
        " time_in_previous_stage, touchpoint_event_ids, touchpoint_count)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        [(tenant_id, *row) for row in rows],
    )


async def delete_transitions(
    conn: asyncpg.Connection, tenant_id: str, transition_ids: Sequence[str]
) -> None:
    if transition_ids:
        await conn.execute(
            "DELETE FROM transitions WHERE tenant_id = $1 AND transition_id = ANY($2::text[])",
            tenant_id,
            list(transition_ids),
        )


async def transitions_of_leads(
    conn: asyncpg.Connection, tenant_id: str, lead_ids: Sequence[str]
) -> dict[str, list[tuple[str, Transition]]]:
    """Per lead, its recorded transitions (id, record), oldest first."""
    rows = await conn.fetch(
        "SELECT lead_id, transition_id, from_stage, to_stage, transitioned_at, reason,"
        " trigger, triggering_event_id, actor, time_in_previous_stage, touchpoint_event_ids,"
        " touchpoint_count FROM transitions WHERE tenant_id = $1 AND lead_id = ANY($2::text[])"
        " ORDER BY lead_id, seq",
        tenant_id,
        list(lead_ids),
    )
    out: dict[str, list[tuple[str, Transition]]] = {}
    for r in rows:
        record = Transition(
            LifecycleStage(r["from_stage"]) if r["from_stage"] else None,
            LifecycleStage(r["to_stage"]),
            r["transitioned_at"],
            r["reason"],
            TransitionTrigger(r["trigger"]),
            r["triggering_event_id"],
            r["actor"],
            r["time_in_previous_stage"],
            tuple(r["touchpoint_event_ids"]),
            r["touchpoint_count"],
        )
        out.setdefault(r["lead_id"], []).append((r["transition_id"], record))
    return out


async def transitions_of(
    conn: asyncpg.Connection, tenant_id: str, lead_id: str
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT transition_id, from_stage, to_stage, transitioned_at, reason, trigger,"
        " triggering_event_id, actor, time_in_previous_stage, touchpoint_event_ids,"
        " touchpoint_count FROM transitions WHERE tenant_id = $1 AND lead_id = $2 ORDER BY seq",
        tenant_id,
        lead_id,
    )


async def stage_of(conn: asyncpg.Connection, tenant_id: str, lead_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT stage, stage_entered_at FROM leads WHERE tenant_id = $1 AND lead_id = $2",
        tenant_id,
        lead_id,
    )


# Models ---------------------------------------------------------------------------------


async def active_version(conn: asyncpg.Connection, tenant_id: str) -> int:
    version = await conn.fetchval(
        "SELECT version FROM models WHERE tenant_id = $1 ORDER BY version DESC LIMIT 1",
        tenant_id,
    )
    return int(version or 0)


async def model_row(
    conn: asyncpg.Connection, tenant_id: str, version: int
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT model, created_at FROM models WHERE tenant_id = $1 AND version = $2",
        tenant_id,
        version,
    )


async def lock_models(conn: asyncpg.Connection, tenant_id: str) -> None:
    """Serialise model changes of one tenant (transaction-scoped advisory lock)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('scoring-models:' || $1))", tenant_id)


async def insert_model(
    conn: asyncpg.Connection,
    tenant_id: str,
    version: int,
    model: dict[str, Any],
    created_at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO models (tenant_id, version, model, created_at) VALUES ($1, $2, $3, $4)",
        tenant_id,
        version,
        model,
        created_at,
    )


# Jobs -----------------------------------------------------------------------------------

_JOB_COLUMNS = (
    "job_id, tenant_id, kind, state, model_version, leads_total, leads_done, leads_changed,"
    " created_at, started_at, finished_at, error, superseded_by_job_id, cursor, lease_owner,"
    " attempts"
)


async def insert_job(
    conn: asyncpg.Connection,
    *,
    job_id: str,
    tenant_id: str,
    kind: str,
    state: str,
    model_version: int,
    created_at: datetime,
    leads_total: int = 0,
    leads_done: int = 0,
    leads_changed: int = 0,
    finished: bool = False,
) -> None:
    await conn.execute(
        "INSERT INTO jobs (job_id, tenant_id, kind, state, model_version, leads_total,"
        " leads_done, leads_changed, created_at, started_at, finished_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::timestamptz,"
        " CASE WHEN $10::bool THEN $9::timestamptz END,"
        " CASE WHEN $10::bool THEN $9::timestamptz END)",
        job_id,
        tenant_id,
        kind,
        state,
        model_version,
        leads_total,
        leads_done,
        leads_changed,
        created_at,
        finished,
    )


async def job(
    conn: asyncpg.Connection, tenant_id: str, job_id: str, *, lock: bool = False
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_JOB_COLUMNS} FROM jobs WHERE tenant_id = $1 AND job_id = $2"
        + (" FOR UPDATE" if lock else ""),
        tenant_id,
        job_id,
    )


async def model_job(
    conn: asyncpg.Connection, tenant_id: str, version: int
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_JOB_COLUMNS} FROM jobs WHERE tenant_id = $1 AND kind = 'model_rescore'"
        " AND model_version = $2 ORDER BY created_at DESC LIMIT 1",
        tenant_id,
        version,
    )


async def open_job(conn: asyncpg.Connection, tenant_id: str, kind: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_JOB_COLUMNS} FROM jobs WHERE tenant_id = $1 AND kind = $2"
        " AND state IN ('queued', 'running') ORDER BY created_at LIMIT 1",
        tenant_id,
        kind,
    )


async def cancel_jobs(
    conn: asyncpg.Connection, tenant_id: str, kind: str, superseded_by: str, now: datetime
) -> int:
    status = await conn.execute(
        "UPDATE jobs SET state = 'cancelled', superseded_by_job_id = $3, finished_at = $4,"
        " lease_owner = '', lease_until = NULL, cursor = ''"
        " WHERE tenant_id = $1 AND kind = $2 AND state IN ('queued', 'running')",
        tenant_id,
        kind,
        superseded_by,
        now,
    )
    return int(status.split()[-1])


async def claim_job(
    conn: asyncpg.Connection, owner: str, lease_seconds: float
) -> asyncpg.Record | None:
    """Take the oldest open job nobody holds (or whose holder's lease ran out)."""
    return await conn.fetchrow(
        "UPDATE jobs SET state = 'running', started_at = coalesce(started_at, now()),"
        " lease_owner = $1, lease_until = now() + make_interval(secs => $2),"
        " attempts = attempts + 1"
        " WHERE job_id = (SELECT job_id FROM jobs WHERE state IN ('queued', 'running')"
        " AND (lease_until IS NULL OR lease_until < now()) ORDER BY created_at LIMIT 1"
        " FOR UPDATE SKIP LOCKED)"
        f" RETURNING {_JOB_COLUMNS}",
        owner,
        lease_seconds,
    )


async def job_progress(
    conn: asyncpg.Connection,
    job_id: str,
    *,
    cursor: str,
    done: int,
    changed: int,
    lease_seconds: float,
    total: int | None = None,
) -> None:
    await conn.execute(
        "UPDATE jobs SET cursor = $2, leads_done = leads_done + $3,"
        " leads_changed = leads_changed + $4, leads_total = coalesce($6, leads_total),"
        " lease_until = now() + make_interval(secs => $5) WHERE job_id = $1",
        job_id,
        cursor,
        done,
        changed,
        lease_seconds,
        total,
    )


async def finish_job(
    conn: asyncpg.Connection, job_id: str, state: str, now: datetime, error: str = ""
) -> None:
    await conn.execute(
        "UPDATE jobs SET state = $2, finished_at = $3, error = $4, cursor = '',"
        " lease_owner = '', lease_until = NULL WHERE job_id = $1",
        job_id,
        state,
        now,
        error,
    )


async def release_job(conn: asyncpg.Connection, job_id: str, owner: str) -> None:
    await conn.execute(
        "UPDATE jobs SET lease_owner = '', lease_until = NULL"
        " WHERE job_id = $1 AND lease_owner = $2",
        job_id,
        owner,
    )


# Erasure --------------------------------------------------------------------------------


async def aliases_touching(
    conn: asyncpg.Connection,
    tenant_id: str,
    lead_ids: Collection[str],
    anonymous_ids: Collection[str],
) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT anonymous_id, lead_id FROM aliases WHERE tenant_id = $1"
        " AND (lead_id = ANY($2::text[]) OR anonymous_id = ANY($3::text[]))",
        tenant_id,
        list(lead_ids),
        list(anonymous_ids),
    )
    return [(r["anonymous_id"], r["lead_id"]) for r in rows]


async def delete_subjects(
    conn: asyncpg.Connection,
    tenant_id: str,
    lead_ids: Collection[str],
    anonymous_ids: Collection[str],
) -> dict[str, int]:
    leads, anons = sorted(lead_ids), sorted(anonymous_ids)

    async def count(sql: str, *args: object) -> int:
        return int((await conn.execute(sql, tenant_id, *args)).split()[-1])

    by_lead = "tenant_id = $1 AND lead_id = ANY($2::text[])"
    # Jobs resume after a lead id; one naming an erased lead steps back to the lead before.
    await conn.execute(
        "UPDATE jobs SET cursor = coalesce((SELECT max(l.lead_id) FROM leads l"
        " WHERE l.tenant_id = jobs.tenant_id AND l.lead_id < jobs.cursor"
        " AND NOT l.lead_id = ANY($2::text[])), '')"
        " WHERE tenant_id = $1 AND cursor = ANY($2::text[])",
        tenant_id,
        leads,
    )
    return {
        "leads": await count(f"DELETE FROM leads WHERE {by_lead}", leads),
        "visitors": await count(
            "DELETE FROM visitors WHERE tenant_id = $1 AND anonymous_id = ANY($2::text[])", anons
        ),
        "aliases": await count(
            "DELETE FROM aliases WHERE tenant_id = $1"
            " AND (lead_id = ANY($2::text[]) OR anonymous_id = ANY($3::text[]))",
            leads,
            anons,
        ),
        "events": await count(
            "DELETE FROM events WHERE tenant_id = $1"
            " AND (lead_id = ANY($2::text[]) OR anonymous_id = ANY($3::text[]))",
            leads,
            anons,
        ),
        "score_history": await count(f"DELETE FROM score_history WHERE {by_lead}", leads),
        "transitions": await count(f"DELETE FROM transitions WHERE {by_lead}", leads),
    }


async def rows_mentioning(
    conn: asyncpg.Connection, table: str, tenant_id: str, needles: Sequence[bytes]
) -> list[asyncpg.Record]:
    """Outbox or dead-letter rows of the tenant whose payload contains any needle, locked
    (a byte search: callers decode each to check)."""
    if table not in {"outbox", "dead_letters"} or not needles:
        return []
    return await conn.fetch(
        f"SELECT id, subject, payload FROM {table} WHERE tenant_id = $1 AND payload IS NOT NULL"
        " AND EXISTS (SELECT 1 FROM unnest($2::bytea[]) AS n WHERE position(n IN payload) > 0)"
        " FOR UPDATE",
        tenant_id,
        list(needles),
    )


async def rewrite_rows(
    conn: asyncpg.Connection,
    table: str,
    deleted: Sequence[int],
    rewritten: Sequence[tuple[int, bytes]],
) -> None:
    if table not in {"outbox", "dead_letters"}:
        raise ValueError(table)
    if deleted:
        await conn.execute(f"DELETE FROM {table} WHERE id = ANY($1::int8[])", list(deleted))
    if rewritten:
        await conn.executemany(f"UPDATE {table} SET payload = $2 WHERE id = $1", rewritten)


# Retention ------------------------------------------------------------------------------

RETENTION_DELETES = {
    "events": "DELETE FROM events WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM events WHERE tenant_id = $1 AND occurred_at < $2 LIMIT $3))",
    "score_history": "DELETE FROM score_history WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM score_history WHERE tenant_id = $1 AND computed_at < $2 LIMIT $3))",
    "outbox": "DELETE FROM outbox WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM outbox WHERE tenant_id = $1 AND published_at < $2 LIMIT $3))",
}


# Lists ----------------------------------------------------------------------------------

SORT_COLUMNS = {
    "total": "total",
    "undecayed_total": "undecayed_total",
    "computed_at": "computed_at",
    "last_activity_at": "last_activity_at",
    "lead_id": "lead_id",
}


@dataclass(frozen=True, slots=True)
class LeadFilter:
    grades: Sequence[str] = ()
    temperatures: Sequence[str] = ()
    stages: Sequence[str] = ()
    brand_id: str = ""
    min_score: float | None = None


def _lead_conditions(tenant_id: str, f: LeadFilter) -> tuple[list[str], list[Any]]:
    conditions = ["tenant_id = $1", "score IS NOT NULL"]
    params: list[Any] = [tenant_id]

    def param(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    if f.grades:
        conditions.append(f"grade = ANY({param(list(f.grades))}::text[])")
    if f.temperatures:
        conditions.append(f"temperature = ANY({param(list(f.temperatures))}::text[])")
    if f.stages:
        conditions.append(f"stage = ANY({param(list(f.stages))}::text[])")
    if f.brand_id:
        conditions.append(f"home_brand_id = {param(f.brand_id)}")
    if f.min_score is not None:
        conditions.append(f"total >= {param(f.min_score)}")
    return conditions, params


async def list_leads(
    conn: asyncpg.Connection,
    tenant_id: str,
    f: LeadFilter,
    *,
    sort: str,
    descending: bool,
    after: tuple[Any, str] | None,
    limit: int,
) -> tuple[list[asyncpg.Record], int]:
    """A page of leads in the order asked (ties by lead id ascending; NULLs last), after
    the (sort value, lead id) of the previous page's last lead; and the count of all."""
    column = SORT_COLUMNS[sort]
    conditions, params = _lead_conditions(tenant_id, f)
    count = await conn.fetchval(
        f"SELECT count(*) FROM leads WHERE {' AND '.join(conditions)}", *params
    )

    def param(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    if sort == "lead_id":
        order = f"lead_id {'DESC' if descending else 'ASC'}"
        if after is not None:
            conditions.append(f"lead_id {'<' if descending else '>'} {param(after[1])}")
    else:
        order = f"{column} {'DESC' if descending else 'ASC'} NULLS LAST, lead_id ASC"
        if after is not None:
            value, last_id = after
            id_param = param(last_id)
            if value is None:
                conditions.append(f"({column} IS NULL AND lead_id > {id_param})")
            else:
                v = param(value)
                beyond = "<" if descending else ">"
                conditions.append(
                    f"({column} {beyond} {v} OR ({column} = {v} AND lead_id > {id_param})"
                    f" OR {column} IS NULL)"
                )
    rows = await conn.fetch(
        f"SELECT lead_id, score, {column} AS sort_value FROM leads"
        f" WHERE {' AND '.join(conditions)} ORDER BY {order} LIMIT {param(limit)}",
        *params,
    )
    return list(rows), int(count)
