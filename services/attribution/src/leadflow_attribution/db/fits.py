"""SQL of the data-driven fit cache (`fits`): one row per (tenant, model, Markov order,
lookback, training range). A request for a fit that does not exist inserts a row without
`computed_at`; the fit job computes it. A fit computed at an older data generation than the
tenant's is stale: served, and recomputed at most every `refresh` seconds.

The job holds a fit by a lease (`leased_until`, renewed while it computes, and a random
`lease_token`), never by a transaction: its result is stored only while the row still has
its token, so a replica whose lease ran out and was taken over cannot overwrite the newer
result."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import numpy as np

from leadflow_attribution.domain.columns import TouchColumns, micros
from leadflow_attribution.domain.journey import channel_label
from leadflow_attribution.domain.models import AttributionModel


@dataclass(frozen=True, slots=True)
class FitKey:
    """Which fit: the model, its Markov order (0 for SHAPLEY), the lookback that builds its
    journeys, and the training range (None, None: the tenant's rolling window)."""

    model: AttributionModel
    markov_order: int
    lookback_seconds: int
    range_start: datetime | None = None
    range_end: datetime | None = None

    @property
    def text(self) -> str:
        span = (
            f"{self.range_start.isoformat()}/{self.range_end.isoformat()}"
            if self.range_start is not None and self.range_end is not None
            else "rolling"
        )
        return f"{self.model.name}:{self.markov_order}:{self.lookback_seconds}:{span}"


@dataclass(frozen=True, slots=True)
class FitRow:
    key: FitKey
    computed_at: datetime | None
    generation: int | None
    training_start: datetime | None
    training_end: datetime | None
    data_through: datetime | None
    journey_count: int
    converting_journey_count: int
    channel_count: int
    exact: bool
    sample_count: int
    error_bound: float
    error_confidence: float
    converged: bool
    weights: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class FitResult:
    """What the job stores for a computed fit."""

    generation: int
    training_start: datetime
    training_end: datetime
    data_through: datetime | None
    journey_count: int
    converting_journey_count: int
    channel_count: int
    exact: bool
    sample_count: int
    error_bound: float
    error_confidence: float
    converged: bool
    weights: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class Lease:
    """A fit claimed by one replica: the row as claimed and the token that proves the claim."""

    tenant_id: str
    row: FitRow
    token: UUID

    @property
    def key(self) -> FitKey:
        return self.row.key


_COLUMNS = (
    "tenant_id, model, markov_order, lookback_seconds, range_start, range_end, computed_at,"
    " generation, training_start, training_end, data_through, journey_count,"
    " converting_journey_count, channel_count, exact, sample_count, error_bound,"
    " error_confidence, converged, weights"
)


def _row(r: asyncpg.Record) -> FitRow:
    return FitRow(
        key=FitKey(
            AttributionModel(r["model"]),
            r["markov_order"],
            r["lookback_seconds"],
            r["range_start"],
            r["range_end"],
        ),
        computed_at=r["computed_at"],
        generation=r["generation"],
        training_start=r["training_start"],
        training_end=r["training_end"],
        data_through=r["data_through"],
        journey_count=r["journey_count"] or 0,
        converting_journey_count=r["converting_journey_count"] or 0,
        channel_count=r["channel_count"] or 0,
        exact=bool(r["exact"]),
        sample_count=r["sample_count"] or 0,
        error_bound=r["error_bound"] or 0.0,
        error_confidence=r["error_confidence"] or 0.0,
        converged=r["converged"] is not False,
        weights={str(k): float(v) for k, v in (r["weights"] or {}).items()},
    )


async def request_fit(conn: asyncpg.Connection, tenant_id: str, key: FitKey) -> FitRow:
    """The fit row for `key`, created (not yet computed) when it did not exist."""
    r = await conn.fetchrow(
        "INSERT INTO fits (tenant_id, fit_key, model, markov_order, lookback_seconds,"
        " range_start, range_end) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (tenant_id, fit_key) DO UPDATE SET last_used_at = now()"
        f" RETURNING {_COLUMNS}",
        tenant_id,
        key.text,
        int(key.model),
        key.markov_order,
        key.lookback_seconds,
        key.range_start,
        key.range_end,
    )
    assert r is not None
    return _row(r)


async def claim_due(
    conn: asyncpg.Connection,
    now: datetime,
    refresh: timedelta,
    max_age: timedelta,
    lease_seconds: float,
) -> Lease | None:
    """Lease one fit that needs computing (never computed; stale and not refreshed for
    `refresh`; a rolling window older than `max_age`) and that nobody holds, or whose
    holder's lease ran out, for `lease_seconds` of the database's clock. SKIP LOCKED keeps
    two replicas from claiming the same row in the same instant; the row lock ends with
    the statement."""
    columns = _COLUMNS.replace(", ", ", f.")
    r = await conn.fetchrow(
        "UPDATE fits f SET leased_until = now() + make_interval(secs => $3),"
        " lease_token = gen_random_uuid()"
        " FROM (SELECT c.tenant_id, c.fit_key FROM fits c"
        " LEFT JOIN tenant_generations g ON g.tenant_id = c.tenant_id"
        " WHERE (c.leased_until IS NULL OR c.leased_until < now())"
        " AND (c.computed_at IS NULL"
        " OR (c.generation < coalesce(g.generation, 0) AND c.computed_at < $1)"
        " OR (c.range_start IS NULL AND c.computed_at < $2))"
        " ORDER BY c.computed_at NULLS FIRST, c.requested_at LIMIT 1"
        " FOR UPDATE OF c SKIP LOCKED) AS due"
        " WHERE f.tenant_id = due.tenant_id AND f.fit_key = due.fit_key"
        f" RETURNING f.{columns}, f.lease_token",
        now - refresh,
        now - max_age,
        lease_seconds,
    )
    if r is None:
        return None
    return Lease(r["tenant_id"], _row(r), r["lease_token"])


async def renew_lease(conn: asyncpg.Connection, lease: Lease, lease_seconds: float) -> bool:
    """Extend the lease; False when the fit is no longer held by it."""
    renewed = await conn.fetchval(
        "UPDATE fits SET leased_until = now() + make_interval(secs => $4)"
        " WHERE tenant_id = $1 AND fit_key = $2 AND lease_token = $3 RETURNING true",
        lease.tenant_id,
        lease.key.text,
        lease.token,
        lease_seconds,
    )
    return bool(renewed)


async def release_lease(conn: asyncpg.Connection, lease: Lease) -> None:
    """Give the fit up now (a replica stopping) instead of when the lease runs out."""
    await conn.execute(
        "UPDATE fits SET leased_until = NULL, lease_token = NULL"
        " WHERE tenant_id = $1 AND fit_key = $2 AND lease_token = $3",
        lease.tenant_id,
        lease.key.text,
        lease.token,
    )


async def save_fit(
    conn: asyncpg.Connection, lease: Lease, result: FitResult, now: datetime
) -> bool:
    """Store the result and end the lease, only if the row still carries the lease's token
    (False: another replica took the fit over, or it was deleted; the result is dropped). A
    lease that ran out without anyone taking over still holds: its result is the newest."""
    status = await conn.execute(
        "UPDATE fits SET computed_at = $4, generation = $5, training_start = $6,"
        " training_end = $7, data_through = $8, journey_count = $9,"
        " converting_journey_count = $10, channel_count = $11, exact = $12, sample_count = $13,"
        " error_bound = $14, error_confidence = $15, converged = $16, weights = $17,"
        " leased_until = NULL, lease_token = NULL"
        " WHERE tenant_id = $1 AND fit_key = $2 AND lease_token = $3",
        lease.tenant_id,
        lease.key.text,
        lease.token,
        now,
        result.generation,
        result.training_start,
        result.training_end,
        result.data_through,
        result.journey_count,
        result.converting_journey_count,
        result.channel_count,
        result.exact,
        result.sample_count,
        result.error_bound,
        result.error_confidence,
        result.converged,
        dict(result.weights),
    )
    return str(status) == "UPDATE 1"


async def touchpoints_between(
    conn: asyncpg.Connection, tenant_id: str, since: datetime, until: datetime
) -> TouchColumns:
    """Every touchpoint of the tenant with since <= occurred_at < until, as columns per
    subject key, each subject's sorted by (occurred_at, event_id) as journeys are (one row
    per event id: the table's key)."""
    rows = await conn.fetch(
        "SELECT subject_key, occurred_at, channel FROM touchpoints"
        " WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3"
        ' ORDER BY subject_key, occurred_at, event_id COLLATE "C"',
        tenant_id,
        since,
        until,
    )
    subjects: list[str] = []
    offsets: list[int] = []
    codes: dict[str, int] = {}
    channels: list[int] = []
    for position, r in enumerate(rows):
        if not subjects or r["subject_key"] != subjects[-1]:
            subjects.append(r["subject_key"])
            offsets.append(position)
        channels.append(codes.setdefault(channel_label(r["channel"]), len(codes)))
    offsets.append(len(rows))
    return TouchColumns(
        subjects=tuple(subjects),
        offsets=np.asarray(offsets if subjects else [0], dtype=np.int64),
        times=np.fromiter((micros(r["occurred_at"]) for r in rows), np.int64, len(rows)),
        channels=np.asarray(channels, dtype=np.int64),
        channel_names=tuple(codes),
    )


async def forget_unused(conn: asyncpg.Connection, tenant_id: str, before: datetime) -> int:
    """Drop explicit-range fits nobody asked for since `before` (rolling fits stay)."""
    status: Any = await conn.execute(
        "DELETE FROM fits WHERE tenant_id = $1 AND range_start IS NOT NULL AND last_used_at < $2",
        tenant_id,
        before,
    )
    return int(str(status).split()[-1])
