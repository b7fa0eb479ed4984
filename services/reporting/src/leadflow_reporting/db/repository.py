"""The read model's SQL: subjects, events, aliases and erasure. Every statement names the
tenant; batches go in as arrays (one statement per batch, never one per event)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

# Columns of `events` an EventRow fills, in order, with the array type each is sent as.
EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_id", "text"),
    ("subject_id", "int4"),
    ("occurred_at", "timestamptz"),
    ("received_at", "timestamptz"),
    ("event_type", "int2"),
    ("custom_name", "text"),
    ("machine", "bool"),
    ("brand_id", "text"),
    ("session_id", "text"),
    ("page_url", "text"),
    ("page_path", "text"),
    ("referrer", "text"),
    ("channel", "text"),
    ("source", "text"),
    ("medium", "text"),
    ("campaign", "text"),
    ("content", "text"),
    ("term", "text"),
    ("country", "text"),
    ("region", "text"),
    ("city", "text"),
    ("value_units", "int8"),
    ("value_nanos", "int4"),
    ("currency_code", "text"),
    ("properties", "jsonb"),
    ("page_id", "int4"),
    ("custom_id", "int4"),
)
# Conversions as the read model counts them: signup and purchase events.
CONVERSION_TYPES = (18, 19)
PERFORMANCE_SAMPLE = 22
ROLLUP_LEVELS = (1, 5, 15, 60)  # minutes
# Sessions with an event this recent are active; older rows of recent_sessions are pruned.
ACTIVE_WINDOW = "30 minutes"
# The latency histogram's bin of a performance sample (see rollup_latency in 0002).
LATENCY_BIN = (
    "CASE WHEN jsonb_typeof(properties -> 'duration_ms') = 'number'"
    " THEN ceil(ln(least(greatest((properties ->> 'duration_ms')::float8, 0.001), 1e9))"
    " / ln(1.02))::int2 ELSE 32767::int2 END"
)
SAMPLE_FAILED = (
    "(COALESCE(properties -> 'error' = 'true'::jsonb, false)"
    " OR COALESCE(jsonb_typeof(properties -> 'status_code') = 'number'"
    " AND (properties ->> 'status_code')::float8 >= 500, false))"
)
# The new events are inserted and rolled up in one statement: only rows actually inserted
# (not already stored) reach the rollups. Rollup rows are upserted in key order so that two
# writers never wait on each other in opposite orders.
_ARRAYS = ", ".join(f"${i + 2}::{t}[]" for i, (_, t) in enumerate(EVENT_COLUMNS))
_INSERT_EVENTS = f"""
WITH ins AS (
    INSERT INTO events (tenant_id, {", ".join(c for c, _ in EVENT_COLUMNS)})
    SELECT $1, * FROM unnest({_ARRAYS})
    ON CONFLICT (tenant_id, event_id) DO NOTHING
    RETURNING subject_id, occurred_at, event_type, custom_name, machine, brand_id, session_id,
        value_units, value_nanos, currency_code, properties
),
human AS (
    SELECT ins.*, level,
        date_bin(level * interval '1 minute', occurred_at, timestamptz 'epoch') AS bucket_start
    FROM ins CROSS JOIN unnest('{{{",".join(map(str, ROLLUP_LEVELS))}}}'::int2[]) AS level
    WHERE NOT machine
),
counts AS (
    INSERT INTO rollup_counts AS r
        (tenant_id, level, bucket_start, brand_id, event_type, custom_name, events)
    SELECT $1, level, bucket_start, brand_id, event_type, custom_name, count(*)
    FROM human GROUP BY 2, 3, 4, 5, 6 ORDER BY 2, 3, 4, 5, 6
    ON CONFLICT (tenant_id, level, bucket_start, brand_id, event_type, custom_name)
    DO UPDATE SET events = r.events + excluded.events
),
conversions AS (
    INSERT INTO rollup_conversions AS r
        (tenant_id, level, bucket_start, brand_id, currency_code, conversions, value)
    SELECT $1, level, bucket_start, brand_id, currency_code, count(*),
        COALESCE(sum(value_units::numeric + value_nanos::numeric / 1000000000), 0)
    FROM human WHERE event_type IN ({", ".join(map(str, CONVERSION_TYPES))})
    GROUP BY 2, 3, 4, 5 ORDER BY 2, 3, 4, 5
    ON CONFLICT (tenant_id, level, bucket_start, brand_id, currency_code)
    DO UPDATE SET conversions = r.conversions + excluded.conversions,
        value = r.value + excluded.value
),
latency AS (
    INSERT INTO rollup_latency AS r
        (tenant_id, level, bucket_start, brand_id, endpoint, bin, samples, errors)
    SELECT $1, level, bucket_start, brand_id, endpoint, bin,
        count(*), count(*) FILTER (WHERE failed)
    FROM (
        SELECT level, bucket_start, brand_id, COALESCE(properties ->> 'endpoint', '') AS endpoint,
            {LATENCY_BIN} AS bin, {SAMPLE_FAILED} AS failed
        FROM human WHERE event_type = {PERFORMANCE_SAMPLE}
    ) AS samples
    GROUP BY 2, 3, 4, 5, 6 ORDER BY 2, 3, 4, 5, 6
    ON CONFLICT (tenant_id, level, bucket_start, brand_id, endpoint, bin)
    DO UPDATE SET samples = r.samples + excluded.samples, errors = r.errors + excluded.errors
),
sessions AS (
    INSERT INTO recent_sessions AS r (tenant_id, brand_id, session_id, subject_id, last_seen)
    SELECT DISTINCT ON (brand_id, session_id) $1, brand_id, session_id, subject_id, occurred_at
    FROM ins
    WHERE NOT machine AND session_id <> ''
        AND occurred_at > now() - interval '{ACTIVE_WINDOW}'
    ORDER BY brand_id, session_id, occurred_at DESC
    ON CONFLICT (tenant_id, brand_id, session_id) DO UPDATE
    SET last_seen = greatest(r.last_seen, excluded.last_seen), subject_id = excluded.subject_id
)
SELECT count(*) FROM ins
"""


@dataclass(frozen=True, slots=True)
class EventRow:
    """One event as the read model stores it (subject_id resolved)."""

    event_id: str
    subject_id: int
    occurred_at: datetime
    received_at: datetime | None
    event_type: int
    custom_name: str
    machine: bool
    brand_id: str
    session_id: str
    page_url: str
    page_path: str
    referrer: str
    channel: str
    source: str
    medium: str
    campaign: str
    content: str
    term: str
    country: str
    region: str
    city: str
    value_units: int | None
    value_nanos: int | None
    currency_code: str
    # Encoded by the pool's jsonb codec (leadflow_platform.db.pool).
    properties: dict[str, Any] | None
    page_id: int = 0  # names.name_id of page_path (0: none)
    custom_id: int = 0  # names.name_id of custom_name (0: none)


async def insert_events(conn: asyncpg.Connection, tenant_id: str, rows: Sequence[EventRow]) -> int:
    """Insert the events not stored yet; returns how many were new."""
    if not rows:
        return 0
    columns = [[getattr(r, name) for r in rows] for name, _ in EVENT_COLUMNS]
    return int(await conn.fetchval(_INSERT_EVENTS, tenant_id, *columns))


PAGE, CUSTOM_NAME = 1, 2  # kinds of names


async def name_ids(
    conn: asyncpg.Connection, tenant_id: str, kind: int, names: Iterable[str]
) -> dict[str, int]:
    """Integer ids of these page paths or custom names, created when new."""
    wanted = sorted({n for n in names if n})
    if not wanted:
        return {}
    await conn.execute(
        "INSERT INTO names (tenant_id, kind, name) SELECT $1, $2, unnest($3::text[])"
        " ON CONFLICT DO NOTHING",
        tenant_id,
        kind,
        wanted,
    )
    rows = await conn.fetch(
        "SELECT name, name_id FROM names WHERE tenant_id = $1 AND kind = $2 AND name = ANY($3)",
        tenant_id,
        kind,
        wanted,
    )
    return {r["name"]: r["name_id"] for r in rows}


async def names_of(conn: asyncpg.Connection, tenant_id: str, ids: Sequence[int]) -> dict[int, str]:
    rows = await conn.fetch(
        "SELECT name_id, name FROM names WHERE tenant_id = $1 AND name_id = ANY($2::int4[])",
        tenant_id,
        list(ids),
    )
    return {r["name_id"]: r["name"] for r in rows}


async def prune_recent_sessions(conn: asyncpg.Connection) -> int:
    status = await conn.execute(
        f"DELETE FROM recent_sessions WHERE last_seen < now() - interval '{ACTIVE_WINDOW}'"
    )
    return int(status.rsplit(" ", 1)[-1])


async def lead_subjects(
    conn: asyncpg.Connection, tenant_id: str, lead_ids: Iterable[str]
) -> dict[str, int]:
    """Subject ids of these leads, created when new."""
    ids = sorted(set(lead_ids))
    if not ids:
        return {}
    await conn.execute(
        "INSERT INTO subjects (tenant_id, lead_id) SELECT $1, unnest($2::text[])"
        " ON CONFLICT (tenant_id, lead_id) WHERE lead_id IS NOT NULL DO NOTHING",
        tenant_id,
        ids,
    )
    rows = await conn.fetch(
        "SELECT lead_id, subject_id FROM subjects WHERE tenant_id = $1 AND lead_id = ANY($2)",
        tenant_id,
        ids,
    )
    return {r["lead_id"]: r["subject_id"] for r in rows}


async def anonymous_subjects(
    conn: asyncpg.Connection, tenant_id: str, anonymous_ids: Iterable[str]
) -> dict[str, int]:
    """Subject ids of these anonymous ids (their lead's once aliased), created when new.
    The mapping row is claimed first, so concurrent writers never leave a stray subject."""
    ids = sorted(set(anonymous_ids))
    if not ids:
        return {}
    created = await conn.fetch(
        "INSERT INTO anonymous_ids (tenant_id, anonymous_id, subject_id)"
        " SELECT $1, a, nextval('subject_ids') FROM unnest($2::text[]) AS a"
        " ON CONFLICT DO NOTHING RETURNING anonymous_id, subject_id",
        tenant_id,
        ids,
    )
    if created:
        await conn.execute(
            "INSERT INTO subjects (subject_id, tenant_id, anonymous_id)"
            " SELECT unnest($2::int4[]), $1, unnest($3::text[])",
            tenant_id,
            [r["subject_id"] for r in created],
            [r["anonymous_id"] for r in created],
        )
    rows = await conn.fetch(
        "SELECT anonymous_id, subject_id FROM anonymous_ids"
        " WHERE tenant_id = $1 AND anonymous_id = ANY($2)",
        tenant_id,
        ids,
    )
    return {r["anonymous_id"]: r["subject_id"] for r in rows}


async def set_home_brand(
    conn: asyncpg.Connection,
    tenant_id: str,
    lead_id: str,
    home_brand_id: str,
    identified_at: datetime | None = None,
) -> None:
    """The lead's home brand, and when it was first identified (a journey milestone)."""
    subject = (await lead_subjects(conn, tenant_id, [lead_id]))[lead_id]
    await conn.execute(
        "UPDATE subjects SET home_brand_id = $2,"
        " identified_at = COALESCE(LEAST(identified_at, $3), identified_at, $3)"
        " WHERE subject_id = $1",
        subject,
        home_brand_id,
        identified_at,
    )


async def merge_anonymous(
    conn: asyncpg.Connection,
    tenant_id: str,
    anonymous_id: str,
    lead_id: str,
    aliased_at: datetime | None = None,
) -> int:
    """Alias: the anonymous id's events, earlier and later, are the lead's. Returns the
    number of events moved."""
    lead_subject = (await lead_subjects(conn, tenant_id, [lead_id]))[lead_id]
    row = await conn.fetchrow(
        "SELECT a.subject_id, s.lead_id FROM anonymous_ids a JOIN subjects s USING (subject_id)"
        " WHERE a.tenant_id = $1 AND a.anonymous_id = $2 FOR UPDATE OF a",
        tenant_id,
        anonymous_id,
    )
    moved = 0
    if row is None:
        await conn.execute(
            "INSERT INTO anonymous_ids (tenant_id, anonymous_id, subject_id) VALUES ($1, $2, $3)"
            " ON CONFLICT (tenant_id, anonymous_id) DO UPDATE SET subject_id = excluded.subject_id",
            tenant_id,
            anonymous_id,
            lead_subject,
        )
    elif row["subject_id"] != lead_subject:
        visitor = row["subject_id"]
        if row["lead_id"] is None:
            # An anonymous-only subject becomes the lead: its events and ids move over.
            status = await conn.execute(
                "UPDATE events SET subject_id = $2 WHERE subject_id = $1", visitor, lead_subject
            )
            moved = int(status.rsplit(" ", 1)[-1])
            await conn.execute(
                "UPDATE anonymous_ids SET subject_id = $2 WHERE subject_id = $1",
                visitor,
                lead_subject,
            )
            await conn.execute(
                "UPDATE recent_sessions SET subject_id = $2 WHERE subject_id = $1",
                visitor,
                lead_subject,
            )
            await conn.execute("DELETE FROM subjects WHERE subject_id = $1", visitor)
        else:
            # Already another lead's: only its later events follow the new alias.
            await conn.execute(
                "UPDATE anonymous_ids SET subject_id = $3"
                " WHERE tenant_id = $1 AND anonymous_id = $2",
                tenant_id,
                anonymous_id,
                lead_subject,
            )
    await conn.execute(
        "UPDATE subjects SET anonymous_id = $2 WHERE subject_id = $1 AND anonymous_id IS NULL",
        lead_subject,
        anonymous_id,
    )
    await conn.execute(
        "UPDATE anonymous_ids SET aliased_at = COALESCE(aliased_at, $3)"
        " WHERE tenant_id = $1 AND anonymous_id = $2",
        tenant_id,
        anonymous_id,
        aliased_at,
    )
    return moved


async def subjects_of(
    conn: asyncpg.Connection, tenant_id: str, lead_ids: Sequence[str], anonymous_ids: Sequence[str]
) -> list[int]:
    rows = await conn.fetch(
        "SELECT subject_id FROM subjects WHERE tenant_id = $1 AND lead_id = ANY($2::text[])"
        " UNION SELECT subject_id FROM anonymous_ids"
        " WHERE tenant_id = $1 AND anonymous_id = ANY($3::text[])",
        tenant_id,
        list(lead_ids),
        list(anonymous_ids),
    )
    return sorted(r["subject_id"] for r in rows)


async def ids_of_subjects(
    conn: asyncpg.Connection, subject_ids: Sequence[int]
) -> tuple[list[str], list[str]]:
    """Every lead id and anonymous id that names these subjects."""
    leads = await conn.fetch(
        "SELECT lead_id, anonymous_id FROM subjects WHERE subject_id = ANY($1::int4[])",
        list(subject_ids),
    )
    anons = await conn.fetch(
        "SELECT anonymous_id FROM anonymous_ids WHERE subject_id = ANY($1::int4[])",
        list(subject_ids),
    )
    lead_ids = [r["lead_id"] for r in leads if r["lead_id"]]
    anonymous_ids = [r["anonymous_id"] for r in leads if r["anonymous_id"]]
    anonymous_ids += [r["anonymous_id"] for r in anons]
    return lead_ids, anonymous_ids


async def delete_subjects(conn: asyncpg.Connection, subject_ids: Sequence[int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in ("events", "recent_sessions", "anonymous_ids", "subjects"):
        status = await conn.execute(
            f"DELETE FROM {table} WHERE subject_id = ANY($1::int4[])", list(subject_ids)
        )
        counts[table] = int(status.rsplit(" ", 1)[-1])
    return counts


async def dead_letters_naming(
    conn: asyncpg.Connection, tenant_id: str, needles: Sequence[bytes]
) -> list[asyncpg.Record]:
    """Dead letters of the tenant whose payload contains any needle (a byte search; the
    caller decodes each), locked."""
    if not needles:
        return []
    return await conn.fetch(
        "SELECT id, subject, payload FROM dead_letters WHERE tenant_id = $1"
        " AND EXISTS (SELECT 1 FROM unnest($2::bytea[]) AS n WHERE position(n IN payload) > 0)"
        " FOR UPDATE",
        tenant_id,
        list(needles),
    )


async def rewrite_dead_letters(
    conn: asyncpg.Connection, deleted: Sequence[int], rewritten: Sequence[tuple[int, bytes]]
) -> None:
    if deleted:
        await conn.execute("DELETE FROM dead_letters WHERE id = ANY($1::bigint[])", list(deleted))
    for row_id, payload in rewritten:
        await conn.execute("UPDATE dead_letters SET payload = $2 WHERE id = $1", row_id, payload)


@dataclass(frozen=True)
class SubjectInfo:
    lead_id: str
    anonymous_id: str
    home_brand_id: str

    @property
    def key(self) -> str:
        """What drop-off lists sort by after the time: the lead id, else the anonymous id."""
        return self.lead_id or self.anonymous_id


async def subject_info(
    conn: asyncpg.Connection, tenant_id: str, subject_ids: Sequence[int]
) -> dict[int, SubjectInfo]:
    rows = await conn.fetch(
        "SELECT subject_id, lead_id, anonymous_id, home_brand_id FROM subjects"
        " WHERE tenant_id = $1 AND subject_id = ANY($2::int4[])",
        tenant_id,
        list(subject_ids),
    )
    return {
        r["subject_id"]: SubjectInfo(
            r["lead_id"] or "", r["anonymous_id"] or "", r["home_brand_id"] if r["lead_id"] else ""
        )
        for r in rows
    }
