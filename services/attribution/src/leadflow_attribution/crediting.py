"""(Re-)attribution of stored conversions under the heuristic models, inside the caller's
transaction: the journey is rebuilt from stored touchpoints, credits replace the stored
ones, and `attribution.conversion.attributed` goes to the outbox in the same transaction,
only when the journey or a credit changed (a new revision each time)."""

from __future__ import annotations

import dataclasses
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from datetime import datetime

import asyncpg

from leadflow.common.v1 import lead_pb2
from leadflow_attribution.db import repository as repo
from leadflow_attribution.domain.attribution import (
    ConversionAttribution,
    attribute_many,
    credits_digest,
)
from leadflow_attribution.domain.journey import Touchpoint
from leadflow_attribution.domain.models import HEURISTIC_MODELS, AttributionOptions
from leadflow_attribution.events.published import conversion_attributed
from leadflow_platform.logging import get_logger
from leadflow_platform.nats import add_to_outbox

log = get_logger(__name__)
OPPORTUNITY = int(lead_pb2.LIFECYCLE_STAGE_OPPORTUNITY)


def heuristic_options(options: AttributionOptions) -> AttributionOptions:
    """The options heuristic credits depend on (the Markov order is not one of them)."""
    return dataclasses.replace(options, markov_order=1)


def latest_at_or_before(entries: Sequence[datetime], moment: datetime) -> datetime | None:
    index = bisect_right(entries, moment) - 1
    return entries[index] if index >= 0 else None


async def journeys(
    conn: asyncpg.Connection,
    tenant_id: str,
    rows: Sequence[repo.ConversionRow],
    options: AttributionOptions,
) -> tuple[dict[str, list[Touchpoint]], dict[str, list[datetime]]]:
    """What attributing `rows` needs: touchpoints per subject key inside the widest
    window, and opportunity entries per lead."""
    if not rows:
        return {}, {}
    since = min(r.conversion.occurred_at for r in rows) - options.lookback_window
    until = max(r.conversion.occurred_at for r in rows)
    touchpoints = await repo.subject_touchpoints(
        conn, tenant_id, {r.conversion.subject for r in rows}, since, until
    )
    entries = await repo.opportunity_entries(
        conn, tenant_id, {r.lead_id for r in rows}, OPPORTUNITY
    )
    return touchpoints, entries


def attribute_rows(
    rows: Sequence[repo.ConversionRow],
    touchpoints: Mapping[str, list[Touchpoint]],
    entries: Mapping[str, list[datetime]],
    options: AttributionOptions,
    models: Sequence[repo.AttributionModel] = HEURISTIC_MODELS,
    channel_weights: Mapping[repo.AttributionModel, Mapping[str, float]] | None = None,
) -> list[ConversionAttribution]:
    """Credits of the stored conversions, all in one batch (attribution.attribute_many)."""
    conversions = [
        dataclasses.replace(
            row.conversion,
            opportunity_at=latest_at_or_before(
                entries.get(row.lead_id, []), row.conversion.occurred_at
            ),
        )
        for row in rows
    ]
    return attribute_many(touchpoints, conversions, options, models, channel_weights)


async def reattribute(
    conn: asyncpg.Connection,
    tenant_id: str,
    conversion_ids: Sequence[str],
    options: AttributionOptions,
    now: datetime,
) -> int:
    """Attribute the conversions again; store and publish those whose journey or credits
    changed. Returns how many were published."""
    rows = await repo.conversions(conn, tenant_id, sorted(set(conversion_ids)), lock=True)
    options = heuristic_options(options)
    touchpoints, entries = await journeys(conn, tenant_id, rows, options)
    changed: list[tuple[repo.ConversionRow, ConversionAttribution, repo.StoredCredits]] = []
    for row, result in zip(rows, attribute_rows(rows, touchpoints, entries, options), strict=True):
        digest = credits_digest(result)
        if digest == row.credits_digest and row.options == options:
            continue
        stored = repo.StoredCredits(
            conversion_id=row.conversion.conversion_id,
            revision=row.revision + 1,
            journey=result.journey,
            credits=dict(result.credits),
            has_value=row.has_value,
            options=options,
            digest=digest,
            attributed_at=now,
        )
        changed.append((row, result, stored))
    if not changed:
        return 0
    await repo.save_credits(conn, tenant_id, [c[2] for c in changed])
    details = await repo.touchpoint_rows(
        conn, tenant_id, sorted({t.event_id for _, r, _ in changed for t in r.journey})
    )
    await add_to_outbox(
        conn,
        *(
            conversion_attributed(tenant_id, row, result, stored.revision, details, options, now)
            for row, result, stored in changed
        ),
    )
    log.info("conversions_attributed", tenant_id=tenant_id, count=len(changed))
    return len(changed)
