"""SQL of the ingest schema. Every function takes the caller's connection (and so its
transaction) and works set-based: one statement per batch, never one per event."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from leadflow_ingest.domain.sessions import SessionState


@dataclass(frozen=True)
class EventRow:
    event_id: str
    brand_id: str
    event_type: str
    lead_id: str | None
    anonymous_id: str | None
    session_id: str
    occurred_at: datetime
    received_at: datetime
    channel: str | None
    flags: str  # comma-separated flag names
    record: bytes


@dataclass(frozen=True)
class SubjectRow:
    subject_key: str
    session_id: str | None
    session_started_at: datetime | None
    session_last_seen_at: datetime | None
    session_event_count: int
    session_page_views: int
    last_email_sent_at: datetime | None


async def existing_event_ids(
    conn: asyncpg.Connection, tenant_id: str, event_ids: Sequence[str]
) -> set[str]:
    rows = await conn.fetch(
        "SELECT event_id FROM events WHERE tenant_id = $1 AND event_id = ANY($2::text[])",
        tenant_id,
        list(event_ids),
    )
    return {r["event_id"] for r in rows}


async def leads_of(
    conn: asyncpg.Connection, tenant_id: str, anonymous_ids: Sequence[str]
) -> dict[str, str]:
    """anonymous id -> lead id, for the ids that were aliased."""
    if not anonymous_ids:
        return {}
    rows = await conn.fetch(
        "SELECT anonymous_id, lead_id FROM aliases"
        " WHERE tenant_id = $1 AND anonymous_id = ANY($2::text[])",
        tenant_id,
        list(anonymous_ids),
    )
    return {r["anonymous_id"]: r["lead_id"] for r in rows}


async def consent_states(
    conn: asyncpg.Connection, tenant_id: str, subject_keys: Sequence[str], *, lock: bool = False
) -> dict[str, dict[str, Any]]:
    if not subject_keys:
        return {}
    rows = await conn.fetch(
        "SELECT subject_key, state FROM consents"
        " WHERE tenant_id = $1 AND subject_key = ANY($2::text[])"
        + (" ORDER BY subject_key FOR UPDATE" if lock else ""),
        tenant_id,
        list(subject_keys),
    )
    return {r["subject_key"]: r["state"] for r in rows}


async def save_consent_state(
    conn: asyncpg.Connection, tenant_id: str, subject_key: str, state: dict[str, Any]
) -> None:
    await conn.execute(
        "INSERT INTO consents (tenant_id, subject_key, state) VALUES ($1, $2, $3)"
        " ON CONFLICT (tenant_id, subject_key)"
        " DO UPDATE SET state = excluded.state, updated_at = now()",
        tenant_id,
        subject_key,
        state,
    )


async def lock_subjects(
    conn: asyncpg.Connection, tenant_id: str, subject_keys: Sequence[str]
) -> dict[str, SubjectRow]:
    """Create missing subject rows and lock all of them, always in key order, so that two
    batches sharing subjects wait for each other instead of deadlocking."""
    keys = sorted(set(subject_keys))
    if not keys:
        return {}
    await conn.execute(
        "INSERT INTO subjects (tenant_id, subject_key)"
        " SELECT $1, k FROM unnest($2::text[]) AS k ORDER BY k ON CONFLICT DO NOTHING",
        tenant_id,
        keys,
    )
    rows = await conn.fetch(
        "SELECT subject_key, session_id, session_started_at, session_last_seen_at,"
        " session_event_count, session_page_views, last_email_sent_at FROM subjects"
        " WHERE tenant_id = $1 AND subject_key = ANY($2::text[])"
        " ORDER BY subject_key FOR UPDATE",
        tenant_id,
        keys,
    )
    return {r["subject_key"]: SubjectRow(**dict(r)) for r in rows}


async def email_deliveries(
    conn: asyncpg.Connection, tenant_id: str, subject_key: str, until: datetime
) -> list[datetime]:
    """The subject's stored email_sent times up to `until`, oldest first."""
    kind, _, subject = subject_key.partition(":")
    column = "lead_id" if kind == "lead" else "anonymous_id"
    rows = await conn.fetch(
        f"SELECT occurred_at FROM events WHERE tenant_id = $1 AND {column} = $2"
        " AND event_type = 'email_sent' AND occurred_at <= $3 ORDER BY occurred_at",
        tenant_id,
        subject,
        until,
    )
    return [r["occurred_at"] for r in rows]


async def save_subjects(
    conn: asyncpg.Connection, tenant_id: str, subjects: Sequence[SubjectRow]
) -> None:
    if not subjects:
        return
    await conn.execute(
        "UPDATE subjects s SET session_id = u.session_id,"
        " session_started_at = u.started, session_last_seen_at = u.last_seen,"
        " session_event_count = u.events, session_page_views = u.page_views,"
        " last_email_sent_at = u.email_sent"
        " FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[],"
        "             $6::int[], $7::int[], $8::timestamptz[])"
        " AS u(subject_key, session_id, started, last_seen, events, page_views, email_sent)"
        " WHERE s.tenant_id = $1 AND s.subject_key = u.subject_key",
        tenant_id,
        [s.subject_key for s in subjects],
        [s.session_id for s in subjects],
        [s.session_started_at for s in subjects],
        [s.session_last_seen_at for s in subjects],
        [s.session_event_count for s in subjects],
        [s.session_page_views for s in subjects],
        [s.last_email_sent_at for s in subjects],
    )


async def insert_events(
    conn: asyncpg.Connection, tenant_id: str, rows: Sequence[EventRow]
) -> set[str]:
    """Insert; returns the ids actually inserted (a concurrent twin makes one a duplicate)."""
    if not rows:
        return set()
    inserted = await conn.fetch(
        "INSERT INTO events (tenant_id, event_id, brand_id, event_type, lead_id, anonymous_id,"
        " session_id, occurred_at, received_at, channel, flags, record)"
        " SELECT $1, e.event_id, e.brand_id, e.event_type, e.lead_id, e.anonymous_id,"
        " e.session_id, e.occurred_at, e.received_at, e.channel,"
        " string_to_array(e.flags, ','), e.record"
        " FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],"
        "             $8::timestamptz[], $9::timestamptz[], $10::text[], $11::text[],"
        "             $12::bytea[])"
        " AS e(event_id, brand_id, event_type, lead_id, anonymous_id, session_id, occurred_at,"
        "      received_at, channel, flags, record)"
        " ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING event_id",
        tenant_id,
        [r.event_id for r in rows],
        [r.brand_id for r in rows],
        [r.event_type for r in rows],
        [r.lead_id for r in rows],
        [r.anonymous_id for r in rows],
        [r.session_id for r in rows],
        [r.occurred_at for r in rows],
        [r.received_at for r in rows],
        [r.channel for r in rows],
        [r.flags for r in rows],
        [r.record for r in rows],
    )
    return {r["event_id"] for r in inserted}


async def sessions_by_id(
    conn: asyncpg.Connection, tenant_id: str, session_ids: Sequence[str]
) -> dict[str, SessionState]:
    """Stored client sessions (their stats continue across batches)."""
    if not session_ids:
        return {}
    rows = await conn.fetch(
        "SELECT session_id, started_at, last_seen_at, event_count, page_views, client_assigned"
        " FROM sessions WHERE tenant_id = $1 AND session_id = ANY($2::text[])",
        tenant_id,
        list(session_ids),
    )
    return {
        r["session_id"]: SessionState(
            r["session_id"],
            r["started_at"],
            r["last_seen_at"],
            r["event_count"],
            r["page_views"],
            generated=not r["client_assigned"],
        )
        for r in rows
    }


async def save_sessions(
    conn: asyncpg.Connection, tenant_id: str, sessions: Sequence[tuple[SessionState, str]]
) -> None:
    """Upsert sessions as sessionisation left them (full rows: stats already include what
    was stored before)."""
    if not sessions:
        return
    await conn.execute(
        "INSERT INTO sessions (tenant_id, session_id, subject_key, started_at, last_seen_at,"
        " event_count, page_views, client_assigned)"
        " SELECT $1, d.session_id, d.subject_key, d.started, d.last_seen, d.events,"
        " d.page_views, d.client"
        " FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[],"
        "             $6::int[], $7::int[], $8::boolean[])"
        " AS d(session_id, subject_key, started, last_seen, events, page_views, client)"
        " ON CONFLICT (tenant_id, session_id) DO UPDATE SET"
        " started_at = excluded.started_at, last_seen_at = excluded.last_seen_at,"
        " event_count = excluded.event_count, page_views = excluded.page_views",
        tenant_id,
        [s.session_id for s, _ in sessions],
        [key for _, key in sessions],
        [s.started_at for s, _ in sessions],
        [s.last_seen_at for s, _ in sessions],
        [s.event_count for s, _ in sessions],
        [s.page_views for s, _ in sessions],
        [not s.generated for s, _ in sessions],
    )


# Profiles and aliases --------------------------------------------------------------------


async def profile_for_update(
    conn: asyncpg.Connection, tenant_id: str, lead_id: str
) -> dict[str, Any] | None:
    found: dict[str, Any] | None = await conn.fetchval(
        "SELECT profile FROM profiles WHERE tenant_id = $1 AND lead_id = $2 FOR UPDATE",
        tenant_id,
        lead_id,
    )
    return found


async def save_profile(
    conn: asyncpg.Connection, tenant_id: str, lead_id: str, profile: dict[str, Any]
) -> None:
    await conn.execute(
        "INSERT INTO profiles (tenant_id, lead_id, profile) VALUES ($1, $2, $3)"
        " ON CONFLICT (tenant_id, lead_id)"
        " DO UPDATE SET profile = excluded.profile, updated_at = now()",
        tenant_id,
        lead_id,
        profile,
    )


async def anonymous_ids_of(
    conn: asyncpg.Connection, tenant_id: str, lead_ids: Sequence[str], *, limit: int = 100
) -> list[str]:
    rows = await conn.fetch(
        "SELECT anonymous_id FROM aliases WHERE tenant_id = $1 AND lead_id = ANY($2::text[])"
        " ORDER BY created_at DESC LIMIT $3",
        tenant_id,
        list(lead_ids),
        limit,
    )
    return [r["anonymous_id"] for r in rows]


async def create_alias(
    conn: asyncpg.Connection, tenant_id: str, anonymous_id: str, lead_id: str
) -> tuple[str, bool]:
    """(the lead the anonymous id belongs to after the call, whether this call made it);
    an existing alias wins."""
    created = await conn.fetchval(
        "INSERT INTO aliases (tenant_id, anonymous_id, lead_id) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING RETURNING true",
        tenant_id,
        anonymous_id,
        lead_id,
    )
    owner: str = await conn.fetchval(
        "SELECT lead_id FROM aliases WHERE tenant_id = $1 AND anonymous_id = $2",
        tenant_id,
        anonymous_id,
    )
    return owner, bool(created)


async def reassign_events(
    conn: asyncpg.Connection, tenant_id: str, anonymous_id: str, lead_id: str
) -> int:
    status = await conn.execute(
        "UPDATE events SET lead_id = $3"
        " WHERE tenant_id = $1 AND anonymous_id = $2 AND lead_id IS NULL",
        tenant_id,
        anonymous_id,
        lead_id,
    )
    return int(status.split()[-1])
