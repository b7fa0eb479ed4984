"""SQL of what reporting keeps from scoring, attribution and routing (migration 0004):
upserts keyed by the publisher's ids, and the erasure of a person's rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg


async def lock_people(
    conn: asyncpg.Connection, tenant_id: str, keys: Sequence[str], *, shared: bool
) -> None:
    """Transaction locks on people ("lead:<id>", "anon:<id>"): writers of their rows share
    them, the erasure holds them alone, so no write lands between an erasure's check and
    its deletes."""
    fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    await conn.execute(
        f"SELECT {fn}(hashtextextended($1 || ':' || k, 0)) FROM unnest($2::text[]) AS k ORDER BY k",
        tenant_id,
        sorted(set(keys)),
    )


async def upsert_score(
    conn: asyncpg.Connection,
    tenant_id: str,
    lead_id: str,
    total: float,
    grade: int,
    temperature: int,
    stage: int,
    home_brand_id: str,
    computed_at: datetime,
) -> None:
    """The lead's score, unless a newer one is stored (events may arrive out of order)."""
    await conn.execute(
        "INSERT INTO lead_scores AS s (tenant_id, lead_id, total, grade, temperature, stage,"
        " home_brand_id, computed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (tenant_id, lead_id) DO UPDATE SET total = excluded.total,"
        " grade = excluded.grade, temperature = excluded.temperature, stage = excluded.stage,"
        " home_brand_id = excluded.home_brand_id, computed_at = excluded.computed_at"
        " WHERE s.computed_at <= excluded.computed_at",
        tenant_id,
        lead_id,
        total,
        grade,
        temperature,
        stage,
        home_brand_id,
        computed_at,
    )


async def insert_crossing(
    conn: asyncpg.Connection,
    tenant_id: str,
    event_id: str,
    lead_id: str,
    dimension: int,
    direction: int,
    from_value: int,
    to_value: int,
    total: float,
    home_brand_id: str,
    occurred_at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO threshold_crossings (tenant_id, event_id, lead_id, dimension, direction,"
        " from_value, to_value, total, home_brand_id, occurred_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
        tenant_id,
        event_id,
        lead_id,
        dimension,
        direction,
        from_value,
        to_value,
        total,
        home_brand_id,
        occurred_at,
    )


async def insert_stage_change(
    conn: asyncpg.Connection,
    tenant_id: str,
    event_id: str,
    lead_id: str,
    from_stage: int,
    to_stage: int,
    occurred_at: datetime,
    time_in_previous_us: int,
    home_brand_id: str,
    reason: str,
) -> None:
    await conn.execute(
        "INSERT INTO stage_changes (tenant_id, event_id, lead_id, from_stage, to_stage,"
        " occurred_at, time_in_previous_us, home_brand_id, reason)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        tenant_id,
        event_id,
        lead_id,
        from_stage,
        to_stage,
        occurred_at,
        time_in_previous_us,
        home_brand_id,
        reason,
    )


@dataclass(frozen=True)
class CreditRow:
    model: int
    position: int
    event_id: str
    channel: str
    source: str
    medium: str
    campaign: str
    brand_id: str
    share: float
    credited_value: Decimal | None
    currency_code: str


async def replace_attribution(
    conn: asyncpg.Connection,
    tenant_id: str,
    conversion_id: str,
    revision: int,
    lead_id: str,
    anonymous_id: str,
    conversion_type: str,
    occurred_at: datetime,
    brand_id: str,
    value: Decimal | None,
    currency_code: str,
    touchpoints: int,
    credits: Sequence[CreditRow],
) -> bool:
    """Keep this revision of the conversion's attribution when it is the highest seen;
    returns whether it was kept."""
    kept = await conn.fetchval(
        "INSERT INTO attributed_conversions AS c (tenant_id, conversion_id, revision, lead_id,"
        " anonymous_id, conversion_type, occurred_at, brand_id, value, currency_code, touchpoints)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        " ON CONFLICT (tenant_id, conversion_id) DO UPDATE SET revision = excluded.revision,"
        " lead_id = excluded.lead_id, anonymous_id = excluded.anonymous_id,"
        " conversion_type = excluded.conversion_type, occurred_at = excluded.occurred_at,"
        " brand_id = excluded.brand_id, value = excluded.value,"
        " currency_code = excluded.currency_code, touchpoints = excluded.touchpoints"
        " WHERE c.revision < excluded.revision RETURNING true",
        tenant_id,
        conversion_id,
        revision,
        lead_id,
        anonymous_id,
        conversion_type,
        occurred_at,
        brand_id,
        value,
        currency_code,
        touchpoints,
    )
    if not kept:
        return False
    await conn.execute(
        "DELETE FROM attribution_credits WHERE tenant_id = $1 AND conversion_id = $2",
        tenant_id,
        conversion_id,
    )
    if credits:
        await conn.execute(
            "INSERT INTO attribution_credits (tenant_id, conversion_id, model, position, event_id,"
            " channel, source, medium, campaign, brand_id, share, credited_value, currency_code)"
            " SELECT $1, $2, * FROM unnest($3::int2[], $4::int4[], $5::text[], $6::text[],"
            " $7::text[], $8::text[], $9::text[], $10::text[], $11::float8[], $12::numeric[],"
            " $13::text[])",
            tenant_id,
            conversion_id,
            [c.model for c in credits],
            [c.position for c in credits],
            [c.event_id for c in credits],
            [c.channel for c in credits],
            [c.source for c in credits],
            [c.medium for c in credits],
            [c.campaign for c in credits],
            [c.brand_id for c in credits],
            [c.share for c in credits],
            [c.credited_value for c in credits],
            [c.currency_code for c in credits],
        )
    return True


async def insert_route(
    conn: asyncpg.Connection,
    tenant_id: str,
    event_id: str,
    decision_id: str,
    lead_id: str,
    home_brand_id: str,
    brand_id: str,
    cross_brand: bool,
    trigger: int,
    rule_id: str,
    occurred_at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO routes (tenant_id, event_id, decision_id, lead_id, home_brand_id, brand_id,"
        " cross_brand, trigger, rule_id, occurred_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
        tenant_id,
        event_id,
        decision_id,
        lead_id,
        home_brand_id,
        brand_id,
        cross_brand,
        trigger,
        rule_id,
        occurred_at,
    )


async def insert_breach(
    conn: asyncpg.Connection,
    tenant_id: str,
    event_id: str,
    assignment_id: str,
    lead_id: str,
    brand_id: str,
    occurred_at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO assignment_breaches (tenant_id, event_id, assignment_id, lead_id, brand_id,"
        " occurred_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        tenant_id,
        event_id,
        assignment_id,
        lead_id,
        brand_id,
        occurred_at,
    )


async def insert_nurture_step(
    conn: asyncpg.Connection,
    tenant_id: str,
    event_id: str,
    enrollment_id: str,
    lead_id: str,
    sequence_id: str,
    step_index: int,
    brand_id: str,
    channel: int,
    due_at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO nurture_steps (tenant_id, event_id, enrollment_id, lead_id, sequence_id,"
        " step_index, brand_id, channel, due_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        tenant_id,
        event_id,
        enrollment_id,
        lead_id,
        sequence_id,
        step_index,
        brand_id,
        channel,
        due_at,
    )


# Tables holding a lead id; attributed conversions may name an anonymous id instead.
_LEAD_TABLES = (
    "lead_scores",
    "threshold_crossings",
    "stage_changes",
    "routes",
    "assignment_breaches",
    "nurture_steps",
)


async def delete_person(
    conn: asyncpg.Connection, tenant_id: str, lead_ids: Sequence[str], anonymous_ids: Sequence[str]
) -> dict[str, int]:
    """Erasure: every row naming the person goes (attribution credits with their
    conversions)."""
    counts: dict[str, int] = {}
    leads, anons = sorted(set(lead_ids)), sorted(set(anonymous_ids))
    for table in _LEAD_TABLES:
        status = await conn.execute(
            f"DELETE FROM {table} WHERE tenant_id = $1 AND lead_id = ANY($2::text[])",
            tenant_id,
            leads,
        )
        counts[table] = int(status.rsplit(" ", 1)[-1])
    gone = await conn.fetch(
        "DELETE FROM attributed_conversions WHERE tenant_id = $1"
        " AND (lead_id = ANY($2::text[]) OR anonymous_id = ANY($3::text[]))"
        " RETURNING conversion_id",
        tenant_id,
        leads,
        anons,
    )
    ids = [r["conversion_id"] for r in gone]
    await conn.execute(
        "DELETE FROM attribution_credits WHERE tenant_id = $1 AND conversion_id = ANY($2::text[])",
        tenant_id,
        ids,
    )
    counts["attributed_conversions"] = len(ids)
    return counts
