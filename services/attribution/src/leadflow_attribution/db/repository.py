"""SQL of the attribution schema. Every function takes the caller's connection (and so its
transaction), filters by tenant, and works set-based: one statement per batch."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from leadflow_attribution.domain.credit import Credit
from leadflow_attribution.domain.journey import Conversion, Touchpoint
from leadflow_attribution.domain.models import AttributionModel, AttributionOptions
from leadflow_attribution.domain.summary import Dimension, LabelTotals

# Advisory locks on subjects use the two-key form (class, hash): a space of their own.
SUBJECT_LOCK_CLASS = 0x4154_5452  # "ATTR"
_ZERO = Decimal(0)


def lead_key(lead_id: str) -> str:
    return f"lead:{lead_id}"


def anon_key(anonymous_id: str) -> str:
    return f"anon:{anonymous_id}"


@dataclass(frozen=True, slots=True)
class TouchpointRow:
    """A touchpoint as stored: the domain touchpoint and what only the API shows."""

    touchpoint: Touchpoint
    subject_key: str
    lead_id: str
    anonymous_id: str
    event_type: int
    event_name: str
    session_id: str


@dataclass(frozen=True, slots=True)
class ConversionRow:
    """A conversion as stored. `conversion.subject` is the subject key; a conversion without
    a value has value 0 and currency "" (proto: Conversion.value unset)."""

    conversion: Conversion
    lead_id: str
    anonymous_id: str
    brand_id: str
    source_event_id: str
    origin: str  # "event" or "stage"
    revision: int = 0
    journey_length: int = 0
    options: AttributionOptions | None = None  # options of the stored credits
    credits_digest: bytes | None = None
    attributed_at: datetime | None = None

    @property
    def has_value(self) -> bool:
        return bool(self.conversion.currency)


@dataclass(frozen=True, slots=True)
class StageChangeRow:
    event_id: str
    lead_id: str
    occurred_at: datetime
    from_stage: int
    to_stage: int
    reason: str


@dataclass(frozen=True, slots=True)
class StoredCredits:
    """New credits of one conversion, to replace its stored ones."""

    conversion_id: str
    revision: int
    journey: Sequence[Touchpoint]
    credits: dict[AttributionModel, tuple[Credit, ...]]
    has_value: bool
    options: AttributionOptions
    digest: bytes
    attributed_at: datetime


# Locks, erasure blocks, generations ---------------------------------------------------------


async def lock_subjects(conn: asyncpg.Connection, tenant_id: str, keys: Iterable[str]) -> None:
    """Serialise transactions on the same subjects (until commit). Every transaction takes
    its locks in one global order, visitors ("anon:") before leads, then by hash, so that two
    never wait for each other in a cycle: a transaction may lock visitors, read their aliases,
    and then lock the leads they resolve to (locks it already holds are taken again at once)."""
    wanted = sorted(set(keys))
    if not wanted:
        return
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1::int, h) FROM"
        " (SELECT DISTINCT u.lead, hashtext($3 || chr(31) || u.k) AS h"
        " FROM unnest($2::text[], $4::boolean[]) AS u(k, lead) ORDER BY 1, 2) AS s",
        SUBJECT_LOCK_CLASS,
        wanted,
        tenant_id,
        [not key.startswith("anon:") for key in wanted],
    )


async def bump_generation(conn: asyncpg.Connection, tenant_id: str) -> None:
    """The tenant's data changed: fits computed before are stale. Called last in a
    transaction, so the row lock is held only until the commit."""
    await conn.execute(
        "INSERT INTO tenant_generations (tenant_id, generation) VALUES ($1, 1)"
        " ON CONFLICT (tenant_id) DO UPDATE SET generation = tenant_generations.generation + 1",
        tenant_id,
    )


async def generation(conn: asyncpg.Connection, tenant_id: str) -> int:
    found = await conn.fetchval(
        "SELECT generation FROM tenant_generations WHERE tenant_id = $1", tenant_id
    )
    return int(found or 0)


# Aliases ------------------------------------------------------------------------------------


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


async def anonymous_ids_of(conn: asyncpg.Connection, tenant_id: str, lead_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT anonymous_id FROM aliases WHERE tenant_id = $1 AND lead_id = $2"
        " ORDER BY anonymous_id",
        tenant_id,
        lead_id,
    )
    return [r["anonymous_id"] for r in rows]


async def merge_subject(
    conn: asyncpg.Connection, tenant_id: str, anonymous_id: str, lead_id: str
) -> int:
    """Record the alias and move the anonymous id's touchpoints and conversions to the lead.
    Returns the rows moved. An anonymous id already aliased to another lead stays there."""
    await conn.execute(
        "INSERT INTO aliases (tenant_id, anonymous_id, lead_id) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING",
        tenant_id,
        anonymous_id,
        lead_id,
    )
    owner = await conn.fetchval(
        "SELECT lead_id FROM aliases WHERE tenant_id = $1 AND anonymous_id = $2",
        tenant_id,
        anonymous_id,
    )
    if owner != lead_id:
        return 0
    moved = 0
    for table in ("touchpoints", "conversions"):
        status = await conn.execute(
            f"UPDATE {table} SET subject_key = $3, lead_id = $4"
            " WHERE tenant_id = $1 AND subject_key = $2",
            tenant_id,
            anon_key(anonymous_id),
            lead_key(lead_id),
            lead_id,
        )
        moved += int(status.split()[-1])
    return moved


# Touchpoints, conversions, stage changes ----------------------------------------------------


async def insert_touchpoints(
    conn: asyncpg.Connection, tenant_id: str, rows: Sequence[TouchpointRow]
) -> list[TouchpointRow]:
    """Insert; returns the rows actually inserted (the others were recorded before)."""
    if not rows:
        return []
    t = [r.touchpoint for r in rows]
    inserted = await conn.fetch(
        "INSERT INTO touchpoints (tenant_id, event_id, subject_key, lead_id, anonymous_id,"
        " occurred_at, channel, source, medium, campaign, content, term, brand_id, event_type,"
        " event_name, session_id)"
        " SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[],"
        " $6::timestamptz[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],"
        " $12::text[], $13::text[], $14::smallint[], $15::text[], $16::text[])"
        " ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING event_id",
        tenant_id,
        [x.event_id for x in t],
        [r.subject_key for r in rows],
        [r.lead_id or None for r in rows],
        [r.anonymous_id or None for r in rows],
        [x.occurred_at for x in t],
        [x.channel for x in t],
        [x.source for x in t],
        [x.medium for x in t],
        [x.campaign for x in t],
        [x.content for x in t],
        [x.term for x in t],
        [x.brand_id for x in t],
        [r.event_type for r in rows],
        [r.event_name for r in rows],
        [r.session_id for r in rows],
    )
    fresh = {r["event_id"] for r in inserted}
    return [r for r in rows if r.touchpoint.event_id in fresh]


async def insert_conversions(
    conn: asyncpg.Connection, tenant_id: str, rows: Sequence[ConversionRow]
) -> list[ConversionRow]:
    """Insert; returns the rows actually inserted."""
    if not rows:
        return []
    c = [r.conversion for r in rows]
    inserted = await conn.fetch(
        "INSERT INTO conversions (tenant_id, conversion_id, subject_key, lead_id, anonymous_id,"
        " conversion_type, occurred_at, value, currency, brand_id, source_event_id, origin)"
        " SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
        " $7::timestamptz[], $8::numeric[], $9::text[], $10::text[], $11::text[], $12::text[])"
        " ON CONFLICT (tenant_id, conversion_id) DO NOTHING RETURNING conversion_id",
        tenant_id,
        [x.conversion_id for x in c],
        [x.subject for x in c],
        [r.lead_id or None for r in rows],
        [r.anonymous_id or None for r in rows],
        [x.type for x in c],
        [x.occurred_at for x in c],
        [x.value if x.currency else None for x in c],
        [x.currency or None for x in c],
        [r.brand_id for r in rows],
        [r.source_event_id for r in rows],
        [r.origin for r in rows],
    )
    fresh = {r["conversion_id"] for r in inserted}
    return [r for r in rows if r.conversion.conversion_id in fresh]


async def insert_stage_change(
    conn: asyncpg.Connection, tenant_id: str, row: StageChangeRow
) -> bool:
    inserted = await conn.fetchval(
        "INSERT INTO stage_changes (tenant_id, event_id, lead_id, occurred_at, from_stage,"
        " to_stage, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT DO NOTHING RETURNING true",
        tenant_id,
        row.event_id,
        row.lead_id,
        row.occurred_at,
        row.from_stage,
        row.to_stage,
        row.reason,
    )
    return bool(inserted)


async def conversions_touched(
    conn: asyncpg.Connection,
    tenant_id: str,
    windows: Sequence[tuple[str, datetime, datetime]],
) -> list[str]:
    """Ids of the conversions of each (subject key, from, to) with from <= occurred_at <= to:
    the conversions whose journey a new touchpoint or stage change may change."""
    if not windows:
        return []
    rows = await conn.fetch(
        "SELECT DISTINCT c.conversion_id FROM unnest($2::text[], $3::timestamptz[],"
        " $4::timestamptz[]) AS w(subject_key, since, until)"
        " JOIN conversions c ON c.tenant_id = $1 AND c.subject_key = w.subject_key"
        " AND c.occurred_at BETWEEN w.since AND w.until",
        tenant_id,
        [w[0] for w in windows],
        [w[1] for w in windows],
        [w[2] for w in windows],
    )
    return [r["conversion_id"] for r in rows]


async def conversion_ids_of_subjects(
    conn: asyncpg.Connection, tenant_id: str, subject_keys: Sequence[str]
) -> list[str]:
    rows = await conn.fetch(
        "SELECT conversion_id FROM conversions WHERE tenant_id = $1"
        " AND subject_key = ANY($2::text[])",
        tenant_id,
        list(subject_keys),
    )
    return [r["conversion_id"] for r in rows]


_CONVERSION_COLUMNS = (
    "conversion_id, subject_key, lead_id, anonymous_id, conversion_type, occurred_at, value,"
    " currency, brand_id, source_event_id, origin, revision, journey_length, lookback_seconds,"
    " last_touch_ignore_direct, half_life_seconds, credits_digest, attributed_at"
)


def _conversion(r: asyncpg.Record) -> ConversionRow:
    options = None
    if r["lookback_seconds"] is not None:
        options = AttributionOptions(
            lookback_window=timedelta(seconds=r["lookback_seconds"]),
            last_touch_ignore_direct=r["last_touch_ignore_direct"],
            time_decay_half_life=timedelta(seconds=r["half_life_seconds"]),
        )
    return ConversionRow(
        conversion=Conversion(
            conversion_id=r["conversion_id"],
            subject=r["subject_key"],
            type=r["conversion_type"],
            occurred_at=r["occurred_at"],
            value=r["value"] if r["value"] is not None else _ZERO,
            currency=r["currency"] or "",
        ),
        lead_id=r["lead_id"] or "",
        anonymous_id=r["anonymous_id"] or "",
        brand_id=r["brand_id"],
        source_event_id=r["source_event_id"],
        origin=r["origin"],
        revision=r["revision"],
        journey_length=r["journey_length"],
        options=options,
        credits_digest=bytes(r["credits_digest"]) if r["credits_digest"] is not None else None,
        attributed_at=r["attributed_at"],
    )


async def conversions(
    conn: asyncpg.Connection, tenant_id: str, conversion_ids: Sequence[str], *, lock: bool = False
) -> list[ConversionRow]:
    if not conversion_ids:
        return []
    rows = await conn.fetch(
        f"SELECT {_CONVERSION_COLUMNS} FROM conversions"
        " WHERE tenant_id = $1 AND conversion_id = ANY($2::text[]) ORDER BY conversion_id"
        + (" FOR UPDATE" if lock else ""),
        tenant_id,
        list(conversion_ids),
    )
    return [_conversion(r) for r in rows]


async def conversion(
    conn: asyncpg.Connection, tenant_id: str, conversion_id: str
) -> ConversionRow | None:
    found = await conversions(conn, tenant_id, [conversion_id])
    return found[0] if found else None


@dataclass(frozen=True, slots=True)
class ConversionFilter:
    """Conversions of a tenant whose occurred_at is in [start, end), optionally only at some
    brands and of some types (proto SummarizeRequest)."""

    tenant_id: str
    start: datetime
    end: datetime
    brand_ids: tuple[str, ...] = ()
    conversion_types: tuple[str, ...] = ()

    def sql(self, alias: str = "c") -> tuple[str, list[Any]]:
        """A WHERE clause over `alias` with parameters $1..$5."""
        return (
            f"{alias}.tenant_id = $1 AND {alias}.occurred_at >= $2 AND {alias}.occurred_at < $3"
            f" AND (cardinality($4::text[]) = 0 OR {alias}.brand_id = ANY($4::text[]))"
            f" AND (cardinality($5::text[]) = 0 OR {alias}.conversion_type = ANY($5::text[]))",
            [
                self.tenant_id,
                self.start,
                self.end,
                list(self.brand_ids),
                list(self.conversion_types),
            ],
        )


async def conversions_in(conn: asyncpg.Connection, where: ConversionFilter) -> list[ConversionRow]:
    clause, params = where.sql()
    rows = await conn.fetch(
        f"SELECT {_CONVERSION_COLUMNS} FROM conversions c WHERE {clause}"
        " ORDER BY c.occurred_at, c.conversion_id",
        *params,
    )
    return [_conversion(r) for r in rows]


_TOUCHPOINT_COLUMNS = (
    "event_id, subject_key, lead_id, anonymous_id, occurred_at, channel, source, medium,"
    " campaign, content, term, brand_id, event_type, event_name, session_id"
)


def _touchpoint(r: asyncpg.Record) -> Touchpoint:
    return Touchpoint(
        r["event_id"],
        r["occurred_at"],
        r["channel"],
        r["source"],
        r["medium"],
        r["campaign"],
        r["content"],
        r["term"],
        r["brand_id"],
    )


def _touchpoint_row(r: asyncpg.Record) -> TouchpointRow:
    return TouchpointRow(
        touchpoint=_touchpoint(r),
        subject_key=r["subject_key"],
        lead_id=r["lead_id"] or "",
        anonymous_id=r["anonymous_id"] or "",
        event_type=r["event_type"],
        event_name=r["event_name"],
        session_id=r["session_id"],
    )


async def subject_touchpoints(
    conn: asyncpg.Connection,
    tenant_id: str,
    subject_keys: Iterable[str],
    since: datetime,
    until: datetime,
) -> dict[str, list[Touchpoint]]:
    """Touchpoints of the subjects with since <= occurred_at <= until, per subject key,
    sorted by (occurred_at, event_id) as journeys are."""
    rows = await conn.fetch(
        f"SELECT {_TOUCHPOINT_COLUMNS} FROM touchpoints WHERE tenant_id = $1"
        " AND subject_key = ANY($2::text[]) AND occurred_at BETWEEN $3 AND $4"
        ' ORDER BY subject_key, occurred_at, event_id COLLATE "C"',
        tenant_id,
        sorted(set(subject_keys)),
        since,
        until,
    )
    found: dict[str, list[Touchpoint]] = {}
    for r in rows:
        found.setdefault(r["subject_key"], []).append(_touchpoint(r))
    return found


async def touchpoint_rows(
    conn: asyncpg.Connection, tenant_id: str, event_ids: Sequence[str]
) -> dict[str, TouchpointRow]:
    rows = await conn.fetch(
        f"SELECT {_TOUCHPOINT_COLUMNS} FROM touchpoints"
        " WHERE tenant_id = $1 AND event_id = ANY($2::text[])",
        tenant_id,
        list(event_ids),
    )
    return {r["event_id"]: _touchpoint_row(r) for r in rows}


async def opportunity_entries(
    conn: asyncpg.Connection, tenant_id: str, lead_ids: Iterable[str], opportunity_stage: int
) -> dict[str, list[datetime]]:
    """When each lead entered the opportunity stage, oldest first."""
    wanted = sorted({lead for lead in lead_ids if lead})
    if not wanted:
        return {}
    rows = await conn.fetch(
        "SELECT lead_id, occurred_at FROM stage_changes WHERE tenant_id = $1"
        " AND lead_id = ANY($2::text[]) AND to_stage = $3 ORDER BY lead_id, occurred_at",
        tenant_id,
        wanted,
        opportunity_stage,
    )
    found: dict[str, list[datetime]] = {}
    for r in rows:
        found.setdefault(r["lead_id"], []).append(r["occurred_at"])
    return found


async def save_credits(
    conn: asyncpg.Connection, tenant_id: str, results: Sequence[StoredCredits]
) -> None:
    """Replace the stored credits of the conversions and record how they were computed."""
    if not results:
        return
    ids = [r.conversion_id for r in results]
    await conn.execute(
        "DELETE FROM credits WHERE tenant_id = $1 AND conversion_id = ANY($2::text[])",
        tenant_id,
        ids,
    )
    conversion_ids: list[str] = []
    models: list[int] = []
    positions: list[int] = []
    event_ids: list[str] = []
    shares: list[Decimal] = []
    values: list[Decimal | None] = []
    for result in results:
        for model, credits in result.credits.items():
            for position, (touchpoint, credit) in enumerate(
                zip(result.journey, credits, strict=True)
            ):
                conversion_ids.append(result.conversion_id)
                models.append(int(model))
                positions.append(position)
                event_ids.append(touchpoint.event_id)
                shares.append(credit.share)
                values.append(credit.value if result.has_value else None)
    if conversion_ids:
        await conn.execute(
            "INSERT INTO credits (tenant_id, conversion_id, model, position, event_id, share,"
            " value) SELECT $1, * FROM unnest($2::text[], $3::smallint[], $4::int[],"
            " $5::text[], $6::numeric[], $7::numeric[])",
            tenant_id,
            conversion_ids,
            models,
            positions,
            event_ids,
            shares,
            values,
        )
    await conn.execute(
        "UPDATE conversions c SET revision = u.revision, journey_length = u.length,"
        " lookback_seconds = u.lookback, last_touch_ignore_direct = u.ignore_direct,"
        " half_life_seconds = u.half_life, credits_digest = u.digest,"
        " attributed_at = u.attributed_at"
        " FROM unnest($2::text[], $3::int[], $4::int[], $5::bigint[], $6::boolean[],"
        " $7::bigint[], $8::bytea[], $9::timestamptz[])"
        " AS u(conversion_id, revision, length, lookback, ignore_direct, half_life, digest,"
        " attributed_at)"
        " WHERE c.tenant_id = $1 AND c.conversion_id = u.conversion_id",
        tenant_id,
        ids,
        [r.revision for r in results],
        [len(r.journey) for r in results],
        [int(r.options.lookback_window.total_seconds()) for r in results],
        [r.options.last_touch_ignore_direct for r in results],
        [int(r.options.time_decay_half_life.total_seconds()) for r in results],
        [r.digest for r in results],
        [r.attributed_at for r in results],
    )


async def stored_credits(
    conn: asyncpg.Connection, tenant_id: str, conversion_id: str
) -> dict[AttributionModel, list[tuple[str, Credit]]]:
    """The stored credits of one conversion: model -> [(event id, credit)] by position."""
    rows = await conn.fetch(
        "SELECT model, event_id, share, value FROM credits WHERE tenant_id = $1"
        " AND conversion_id = $2 ORDER BY model, position",
        tenant_id,
        conversion_id,
    )
    found: dict[AttributionModel, list[tuple[str, Credit]]] = {}
    for r in rows:
        found.setdefault(AttributionModel(r["model"]), []).append(
            (r["event_id"], Credit(r["share"], r["value"] if r["value"] is not None else _ZERO))
        )
    return found


# Summaries over stored credits --------------------------------------------------------------

_DIMENSION_COLUMNS = {
    Dimension.CHANNEL: "t.channel",
    Dimension.SOURCE: "t.source",
    Dimension.MEDIUM: "t.medium",
    Dimension.CAMPAIGN: "t.campaign",
    Dimension.BRAND: "t.brand_id",
}


@dataclass(frozen=True, slots=True)
class StoredSummary:
    """Per-label sums of stored credits, with the conversions they cover."""

    labels: list[LabelTotals]
    conversion_count: int
    total_values: dict[str, Decimal]


async def summarize_stored(
    conn: asyncpg.Connection,
    where: ConversionFilter,
    model: AttributionModel,
    dimension: Dimension,
    options: AttributionOptions,
) -> StoredSummary:
    """Credit per dimension value over the stored credits of the filtered conversions whose
    credits were computed with `options` (for `model`); conversions with an empty journey
    are "(unattributed)". A touchpoint deleted since keeps its credit under "(none)"."""
    clause, params = where.sql()
    matches = " AND c.lookback_seconds = $6"
    params.append(int(options.lookback_window.total_seconds()))
    if model is AttributionModel.LAST_TOUCH:
        matches += " AND c.last_touch_ignore_direct = $7"
        params.append(options.last_touch_ignore_direct)
    elif model is AttributionModel.TIME_DECAY:
        matches += " AND c.half_life_seconds = $7"
        params.append(int(options.time_decay_half_life.total_seconds()))
    label = f"coalesce(nullif({_DIMENSION_COLUMNS[dimension]}, ''), '(none)')"
    scope = (
        "SELECT conversion_id, currency, value, journey_length"
        f" FROM conversions c WHERE {clause}{matches}"
    )
    credited = await conn.fetch(
        f"WITH c AS ({scope})"
        f" SELECT {label} AS label, c.currency, sum(k.share) AS share, sum(k.value) AS value,"
        " count(DISTINCT k.conversion_id) FILTER (WHERE k.share > 0) AS conversions,"
        " count(*) AS touchpoints"
        " FROM c JOIN credits k ON k.tenant_id = $1 AND k.conversion_id = c.conversion_id"
        f" AND k.model = {int(model)}"
        " LEFT JOIN touchpoints t ON t.tenant_id = $1 AND t.event_id = k.event_id"
        " GROUP BY 1, 2",
        *params,
    )
    totals = await conn.fetch(
        f"WITH c AS ({scope})"
        " SELECT c.currency, count(*) AS conversions, sum(c.value) AS value,"
        " count(*) FILTER (WHERE c.journey_length = 0) AS unattributed,"
        " sum(c.value) FILTER (WHERE c.journey_length = 0) AS unattributed_value"
        " FROM c GROUP BY 1",
        *params,
    )
    # One label can come in several currency groups: counts of distinct conversions per
    # group add up, since a conversion has one currency.
    labels = [
        LabelTotals(
            dimension_value=r["label"],
            credited_conversions=r["share"],
            credited_values={r["currency"]: r["value"]} if r["currency"] else {},
            conversion_count=r["conversions"],
            touchpoint_count=r["touchpoints"],
        )
        for r in credited
    ]
    count = 0
    total_values: dict[str, Decimal] = {}
    unattributed = 0
    unattributed_values: dict[str, Decimal] = {}
    for r in totals:
        count += r["conversions"]
        unattributed += r["unattributed"]
        if r["currency"]:
            total_values[r["currency"]] = r["value"]
            if r["unattributed"]:
                unattributed_values[r["currency"]] = r["unattributed_value"]
    if unattributed:
        labels.append(
            LabelTotals("(unattributed)", Decimal(unattributed), unattributed_values,
                        unattributed, 0)
        )  # fmt: skip
    return StoredSummary(labels, count, total_values)


async def conversions_not_matching(
    conn: asyncpg.Connection,
    where: ConversionFilter,
    model: AttributionModel,
    options: AttributionOptions,
) -> list[ConversionRow]:
    """The filtered conversions whose stored credits for `model` were computed with other
    options (summarize_stored leaves them out)."""
    clause, params = where.sql()
    differs = " AND (c.lookback_seconds IS DISTINCT FROM $6"
    params.append(int(options.lookback_window.total_seconds()))
    if model is AttributionModel.LAST_TOUCH:
        differs += " OR c.last_touch_ignore_direct IS DISTINCT FROM $7"
        params.append(options.last_touch_ignore_direct)
    elif model is AttributionModel.TIME_DECAY:
        differs += " OR c.half_life_seconds IS DISTINCT FROM $7"
        params.append(int(options.time_decay_half_life.total_seconds()))
    differs += ")"
    rows = await conn.fetch(
        f"SELECT {_CONVERSION_COLUMNS} FROM conversions c WHERE {clause}{differs}"
        " ORDER BY c.occurred_at, c.conversion_id",
        *params,
    )
    return [_conversion(r) for r in rows]


# Journeys (GetJourney) ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JourneyCursor:
    """Where a journey page starts: after (occurred_at, id, kind)."""

    occurred_at: datetime
    entry_id: str
    kind: int  # 0 touchpoint, 1 conversion, 2 stage change


async def subject_known(
    conn: asyncpg.Connection, tenant_id: str, subject_keys: Sequence[str], lead_id: str
) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM touchpoints WHERE tenant_id = $1"
            " AND subject_key = ANY($2::text[]))"
            " OR EXISTS (SELECT 1 FROM conversions WHERE tenant_id = $1"
            " AND subject_key = ANY($2::text[]))"
            " OR EXISTS (SELECT 1 FROM stage_changes WHERE tenant_id = $1 AND lead_id = $3)",
            tenant_id,
            list(subject_keys),
            lead_id,
        )
    )


def _after(cursor: JourneyCursor | None, kind: int, id_column: str) -> tuple[str, list[Any]]:
    if cursor is None:
        return "", []
    return (
        f' AND (occurred_at, {id_column} COLLATE "C", {kind}) > ($5, $6 COLLATE "C", $7)',
        [cursor.occurred_at, cursor.entry_id, cursor.kind],
    )


async def journey_page(
    conn: asyncpg.Connection,
    tenant_id: str,
    subject_keys: Sequence[str],
    lead_id: str,
    since: datetime | None,
    until: datetime | None,
    cursor: JourneyCursor | None,
    limit: int,
) -> list[tuple[JourneyCursor, TouchpointRow | ConversionRow | StageChangeRow]]:
    """Up to `limit` entries after `cursor`, ordered by (occurred_at, id, kind)."""
    bounds = " AND ($3::timestamptz IS NULL OR occurred_at >= $3)"
    bounds += " AND ($4::timestamptz IS NULL OR occurred_at < $4)"
    base = [tenant_id, list(subject_keys), since, until]
    entries: list[tuple[JourneyCursor, TouchpointRow | ConversionRow | StageChangeRow]] = []
    after, extra = _after(cursor, 0, "event_id")
    for r in await conn.fetch(
        f"SELECT {_TOUCHPOINT_COLUMNS} FROM touchpoints WHERE tenant_id = $1"
        f" AND subject_key = ANY($2::text[]){bounds}{after}"
        f' ORDER BY occurred_at, event_id COLLATE "C" LIMIT {int(limit)}',
        *base,
        *extra,
    ):
        entries.append((JourneyCursor(r["occurred_at"], r["event_id"], 0), _touchpoint_row(r)))
    after, extra = _after(cursor, 1, "conversion_id")
    for r in await conn.fetch(
        f"SELECT {_CONVERSION_COLUMNS} FROM conversions WHERE tenant_id = $1"
        f" AND subject_key = ANY($2::text[]){bounds}{after}"
        f' ORDER BY occurred_at, conversion_id COLLATE "C" LIMIT {int(limit)}',
        *base,
        *extra,
    ):
        entries.append((JourneyCursor(r["occurred_at"], r["conversion_id"], 1), _conversion(r)))
    if lead_id:
        after, extra = _after(cursor, 2, "event_id")
        for r in await conn.fetch(
            "SELECT event_id, lead_id, occurred_at, from_stage, to_stage, reason"
            f" FROM stage_changes WHERE tenant_id = $1 AND lead_id = $2{bounds}{after}"
            f' ORDER BY occurred_at, event_id COLLATE "C" LIMIT {int(limit)}',
            tenant_id,
            lead_id,
            since,
            until,
            *extra,
        ):
            entries.append(
                (JourneyCursor(r["occurred_at"], r["event_id"], 2), StageChangeRow(**dict(r)))
            )
    entries.sort(key=lambda e: (e[0].occurred_at, e[0].entry_id, e[0].kind))
    return entries[:limit]


# Erasure ------------------------------------------------------------------------------------


async def close_person(
    conn: asyncpg.Connection, tenant_id: str, lead_ids: set[str], anonymous_ids: set[str]
) -> None:
    """Add every id connected to the person by the aliases attribution knows."""
    while True:
        rows = await conn.fetch(
            "SELECT anonymous_id, lead_id FROM aliases WHERE tenant_id = $1"
            " AND (lead_id = ANY($2::text[]) OR anonymous_id = ANY($3::text[]))",
            tenant_id,
            sorted(lead_ids),
            sorted(anonymous_ids),
        )
        before = (len(lead_ids), len(anonymous_ids))
        lead_ids.update(r["lead_id"] for r in rows)
        anonymous_ids.update(r["anonymous_id"] for r in rows)
        if (len(lead_ids), len(anonymous_ids)) == before:
            return


async def delete_person(
    conn: asyncpg.Connection, tenant_id: str, lead_ids: Sequence[str], anonymous_ids: Sequence[str]
) -> tuple[dict[str, int], list[tuple[str, int]]]:
    """Delete every row naming the person. Returns rows deleted per table and the deleted
    conversions with their revision (their published events are still in the outbox)."""
    keys = [lead_key(i) for i in lead_ids] + [anon_key(i) for i in anonymous_ids]
    params = (tenant_id, keys, list(lead_ids), list(anonymous_ids))
    names = (
        "(subject_key = ANY($2::text[]) OR lead_id = ANY($3::text[])"
        " OR anonymous_id = ANY($4::text[]))"
    )
    gone = await conn.fetch(
        f"DELETE FROM conversions WHERE tenant_id = $1 AND {names}"
        " RETURNING conversion_id, revision",
        *params,
    )
    conversions_gone = [(r["conversion_id"], r["revision"]) for r in gone]
    counts = {"conversions": len(gone)}
    status = await conn.execute(
        "DELETE FROM credits WHERE tenant_id = $1 AND conversion_id = ANY($2::text[])",
        tenant_id,
        [c for c, _ in conversions_gone],
    )
    counts["credits"] = int(status.split()[-1])
    status = await conn.execute(
        f"DELETE FROM touchpoints WHERE tenant_id = $1 AND {names}", *params
    )
    counts["touchpoints"] = int(status.split()[-1])
    status = await conn.execute(
        "DELETE FROM stage_changes WHERE tenant_id = $1 AND lead_id = ANY($2::text[])",
        tenant_id,
        list(lead_ids),
    )
    counts["stage_changes"] = int(status.split()[-1])
    status = await conn.execute(
        "DELETE FROM aliases WHERE tenant_id = $1"
        " AND (lead_id = ANY($2::text[]) OR anonymous_id = ANY($3::text[]))",
        tenant_id,
        list(lead_ids),
        list(anonymous_ids),
    )
    counts["aliases"] = int(status.split()[-1])
    return counts, conversions_gone


async def delete_outbox_messages(
    conn: asyncpg.Connection, tenant_id: str, message_ids: Sequence[str]
) -> int:
    if not message_ids:
        return 0
    status = await conn.execute(
        "DELETE FROM outbox WHERE tenant_id = $1 AND message_id = ANY($2::text[])",
        tenant_id,
        list(message_ids),
    )
    return int(status.split()[-1])


async def dead_letters(conn: asyncpg.Connection, tenant_id: str) -> list[tuple[int, str, bytes]]:
    rows = await conn.fetch(
        "SELECT id, subject, payload FROM dead_letters WHERE tenant_id = $1", tenant_id
    )
    return [(r["id"], r["subject"], bytes(r["payload"] or b"")) for r in rows]


async def delete_dead_letters(conn: asyncpg.Connection, ids: Sequence[int]) -> None:
    if ids:
        await conn.execute("DELETE FROM dead_letters WHERE id = ANY($1::bigint[])", list(ids))
