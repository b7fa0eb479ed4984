"""Applying the events of scoring, attribution and routing to the read model, each inside the
consumer's transaction (the inbox record makes a redelivery a no-op; rows are also keyed by
the publisher's ids, so a republished event is stored once).

Events of an erased person (their ids remembered as keyed hashes by the ingest erasure, as
leadflow_platform.erased keeps them) are dropped: a score or route published before the
erasure but delivered after it never brings the person back. A shared lock on the person
(the erasure takes it exclusively) keeps an erasure and a concurrent write in order."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg

from leadflow.attribution.v1 import events_pb2 as attribution_events
from leadflow.routing.v1 import events_pb2 as routing_events
from leadflow.scoring.v1 import events_pb2 as scoring_events
from leadflow_platform.erased import ErasedIdentifiers
from leadflow_reporting.db import outcome_rows as rows
from leadflow_reporting.ingestion import _datetime

NANO = Decimal(1_000_000_000)


def _money(m: Any) -> tuple[Decimal | None, str]:
    if not m.currency_code and not m.units and not m.nanos:
        return None, ""
    return Decimal(m.units) + Decimal(m.nanos) / NANO, m.currency_code


def _us(d: Any) -> int:
    return int(d.seconds) * 1_000_000 + int(d.nanos) // 1000


class Outcomes:
    def __init__(self, erased: ErasedIdentifiers | None = None) -> None:
        self._erased = erased or ErasedIdentifiers()

    async def _blocked(
        self, conn: asyncpg.Connection, tenant_id: str, lead_id: str, anonymous_id: str = ""
    ) -> bool:
        keys = [f"lead:{lead_id}"] if lead_id else []
        keys += [f"anon:{anonymous_id}"] if anonymous_id else []
        if not keys:
            return False
        await rows.lock_people(conn, tenant_id, keys, shared=True)
        return bool(await self._erased.erased(conn, tenant_id, keys))

    # scoring ---------------------------------------------------------------------------------

    async def score_changed(
        self, conn: asyncpg.Connection, tenant_id: str, m: scoring_events.ScoreChanged
    ) -> None:
        await self._score(conn, tenant_id, m.lead_id or m.score.lead_id, m.score)

    async def threshold_crossed(
        self, conn: asyncpg.Connection, tenant_id: str, m: scoring_events.ThresholdCrossed
    ) -> None:
        lead_id = m.lead_id or m.score.lead_id
        if not lead_id or await self._blocked(conn, tenant_id, lead_id):
            return
        if m.WhichOneof("crossing") == "grade":
            before, after = int(m.grade.from_grade), int(m.grade.to_grade)
        else:
            before = int(m.temperature.from_temperature)
            after = int(m.temperature.to_temperature)
        await rows.insert_crossing(
            conn,
            tenant_id,
            m.metadata.event_id,
            lead_id,
            m.dimension,
            m.direction,
            before,
            after,
            m.score.total,
            m.score.home_brand_id,
            _datetime(m.metadata.occurred_at),
        )
        await self._score(conn, tenant_id, lead_id, m.score, checked=True)

    async def _score(
        self, conn: asyncpg.Connection, tenant_id: str, lead_id: str, s: Any, checked: bool = False
    ) -> None:
        if not lead_id or not s.HasField("computed_at"):
            return
        if not checked and await self._blocked(conn, tenant_id, lead_id):
            return
        await rows.upsert_score(
            conn,
            tenant_id,
            lead_id,
            s.total,
            s.grade,
            s.temperature,
            s.stage,
            s.home_brand_id,
            _datetime(s.computed_at),
        )

    async def stage_changed(
        self, conn: asyncpg.Connection, tenant_id: str, m: scoring_events.StageChanged
    ) -> None:
        if not m.lead_id or await self._blocked(conn, tenant_id, m.lead_id):
            return
        await rows.insert_stage_change(
            conn,
            tenant_id,
            m.metadata.event_id,
            m.lead_id,
            m.from_stage,
            m.to_stage,
            _datetime(m.metadata.occurred_at),
            _us(m.time_in_previous_stage),
            m.home_brand_id,
            m.reason,
        )

    # attribution -----------------------------------------------------------------------------

    async def conversion_attributed(
        self, conn: asyncpg.Connection, tenant_id: str, m: attribution_events.ConversionAttributed
    ) -> None:
        c = m.conversion
        lead_id, anonymous_id = c.subject.lead_id, c.subject.anonymous_id
        if not c.conversion_id or await self._blocked(conn, tenant_id, lead_id, anonymous_id):
            return
        touch = {t.position: t.touchpoint for t in m.touchpoints}
        credits = []
        for a in m.attributions:
            for credit in a.credits:
                tp = touch.get(credit.position)
                mk = tp.marketing if tp is not None else None
                value, currency = _money(credit.credited_value)
                credits.append(
                    rows.CreditRow(
                        model=a.model,
                        position=credit.position,
                        event_id=credit.event_id,
                        channel=mk.channel if mk is not None else "",
                        source=mk.source if mk is not None else "",
                        medium=mk.medium if mk is not None else "",
                        campaign=mk.campaign if mk is not None else "",
                        brand_id=tp.brand_id if tp is not None else "",
                        share=credit.share,
                        credited_value=value,
                        currency_code=currency,
                    )
                )
        value, currency = _money(c.value) if c.HasField("value") else (None, "")
        await rows.replace_attribution(
            conn,
            tenant_id,
            c.conversion_id,
            m.revision,
            lead_id,
            anonymous_id,
            c.conversion_type,
            _datetime(c.occurred_at),
            c.brand_id,
            value,
            currency,
            len(m.touchpoints),
            credits,
        )

    # routing ---------------------------------------------------------------------------------

    async def lead_routed(
        self, conn: asyncpg.Connection, tenant_id: str, m: routing_events.LeadRouted
    ) -> None:
        if not m.lead_id or await self._blocked(conn, tenant_id, m.lead_id):
            return
        await rows.insert_route(
            conn,
            tenant_id,
            m.metadata.event_id,
            m.decision_id,
            m.lead_id,
            m.home_brand_id,
            m.brand_id,
            m.cross_brand,
            m.trigger,
            m.rule_id,
            _datetime(m.metadata.occurred_at),
        )

    async def assignment_breached(
        self, conn: asyncpg.Connection, tenant_id: str, m: routing_events.AssignmentBreached
    ) -> None:
        if not m.lead_id or await self._blocked(conn, tenant_id, m.lead_id):
            return
        await rows.insert_breach(
            conn,
            tenant_id,
            m.metadata.event_id,
            m.assignment_id,
            m.lead_id,
            m.brand_id,
            _datetime(m.metadata.occurred_at),
        )

    async def nurture_step_due(
        self, conn: asyncpg.Connection, tenant_id: str, m: routing_events.NurtureStepDue
    ) -> None:
        if not m.lead_id or await self._blocked(conn, tenant_id, m.lead_id):
            return
        due = m.due_at if m.HasField("due_at") else m.metadata.occurred_at
        await rows.insert_nurture_step(
            conn,
            tenant_id,
            m.metadata.event_id,
            m.enrollment_id,
            m.lead_id,
            m.sequence_id,
            m.step_index,
            m.brand_id,
            m.channel,
            _datetime(due),
        )
