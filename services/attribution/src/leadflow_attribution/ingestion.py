"""What attribution does with the events it consumes, each in the transaction that records
the message in the consumer's inbox (so a redelivery changes nothing):

- ingest.event.recorded: touchpoints (events with marketing context, not machine-made) and
  conversions (events of a type the tenant counts), then re-attribution of every conversion
  whose journey a new touchpoint joins;
- ingest.subject.aliased: the anonymous id's rows move to the lead; its conversions are
  attributed again over the merged journey;
- scoring.stage.changed: the stage change is kept (it anchors W-shaped credit); entering a
  stage the tenant counts is a conversion; entering opportunity re-attributes the lead's
  conversions it may anchor;
- ingest.subject.erased: erasure.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg

from leadflow.common.v1 import event_type_pb2, lead_pb2
from leadflow.ingest.v1 import events_pb2 as ingest_events
from leadflow.scoring.v1 import events_pb2 as scoring_events
from leadflow_attribution import crediting
from leadflow_attribution.api import mapping
from leadflow_attribution.db import repository as repo
from leadflow_attribution.domain.conversion_rules import (
    event_conversion_type,
    stage_conversion_type,
)
from leadflow_attribution.domain.journey import Conversion, Touchpoint, value_violations
from leadflow_attribution.domain.policy import TenantPolicy
from leadflow_attribution.erasure import Erasure
from leadflow_platform.logging import get_logger

log = get_logger(__name__)
_CUSTOM = event_type_pb2.EVENT_TYPE_CUSTOM
_ZERO = Decimal(0)
STAGE_NAMES: dict[int, str] = {
    value: name.removeprefix("LIFECYCLE_STAGE_").lower()
    for name, value in lead_pb2.LifecycleStage.items()
    if value != lead_pb2.LIFECYCLE_STAGE_UNSPECIFIED
}
Policies = Callable[[str], Awaitable[TenantPolicy]]


def _now() -> datetime:
    return datetime.now(UTC)


class Ingestion:
    def __init__(self, policies: Policies, erasure: Erasure) -> None:
        self._policies = policies
        self.erasure = erasure

    async def events_recorded(
        self, conn: asyncpg.Connection, tenant_id: str, message: ingest_events.EventsRecorded
    ) -> None:
        policy = await self._policies(tenant_id)
        events = [
            e
            for e in message.events
            if e.event_id and (e.subject.lead_id or e.subject.anonymous_id)
        ]
        if not events:
            return
        # Lock every subject before reading what another replica may change under it: the
        # visitors before their aliases are read (an alias committed after the read would
        # leave their touchpoints under the visitor's key), then the leads, and only then
        # look for erasures (one committed after the check would be undone by this insert).
        visitors = sorted({e.subject.anonymous_id for e in events} - {""})
        await repo.lock_subjects(conn, tenant_id, [repo.anon_key(v) for v in visitors])
        aliased = await repo.leads_of(
            conn,
            tenant_id,
            sorted({e.subject.anonymous_id for e in events if not e.subject.lead_id}),
        )
        leads = {e.subject.lead_id or aliased.get(e.subject.anonymous_id, "") for e in events}
        await repo.lock_subjects(conn, tenant_id, [repo.lead_key(i) for i in leads if i])
        erased_leads, erased_anons = await self.erasure.blocked(
            conn,
            tenant_id,
            {e.subject.lead_id for e in events},
            {e.subject.anonymous_id for e in events},
        )
        events = [
            e
            for e in events
            if e.subject.lead_id not in erased_leads and e.subject.anonymous_id not in erased_anons
        ]
        touchpoints: list[repo.TouchpointRow] = []
        conversions: list[repo.ConversionRow] = []
        for e in events:
            lead_id = e.subject.lead_id or aliased.get(e.subject.anonymous_id, "")
            anonymous_id = e.subject.anonymous_id
            key = repo.lead_key(lead_id) if lead_id else repo.anon_key(anonymous_id)
            at = mapping.to_datetime(e.occurred_at)
            type_name = mapping.EVENT_TYPE_NAMES.get(e.type, "")
            if e.HasField("marketing") and not e.flags.machine_generated:
                m = e.marketing
                if any((m.channel, m.source, m.medium, m.campaign, m.content, m.term)):
                    touchpoints.append(
                        repo.TouchpointRow(
                            Touchpoint(
                                e.event_id, at, m.channel, m.source, m.medium, m.campaign,
                                m.content, m.term, e.brand_id,
                            ),
                            key, lead_id, anonymous_id, int(e.type),
                            e.custom_name if e.type == _CUSTOM else "", e.session_id,
                        )
                    )  # fmt: skip
            kind = event_conversion_type(type_name, e.custom_name, policy.conversion_types)
            if kind is None:
                continue
            value, currency = mapping.to_decimal(e.value), e.value.currency_code
            if not e.HasField("value") or (not currency and value == 0):
                value, currency = _ZERO, ""
            elif mapping.money_violations(e.value, "value") or value_violations(value, currency):
                # Ingest validates values; one that still breaks a rule counts without value.
                log.warning("conversion_value_ignored", tenant_id=tenant_id, event_id=e.event_id)
                value, currency = _ZERO, ""
            conversions.append(
                repo.ConversionRow(
                    Conversion(e.event_id, key, kind, at, value, currency),
                    lead_id, anonymous_id, e.brand_id, e.event_id, "event",
                )
            )  # fmt: skip
        await self._record(conn, tenant_id, policy, touchpoints, conversions)

    async def _record(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        policy: TenantPolicy,
        touchpoints: list[repo.TouchpointRow],
        conversions: list[repo.ConversionRow],
    ) -> None:
        if not touchpoints and not conversions:
            return
        # The caller holds the locks of every subject key involved.
        new_touchpoints = await repo.insert_touchpoints(conn, tenant_id, touchpoints)
        new_conversions = await repo.insert_conversions(conn, tenant_id, conversions)
        lookback = policy.options.lookback_window
        affected = await repo.conversions_touched(
            conn,
            tenant_id,
            [
                (t.subject_key, t.touchpoint.occurred_at, t.touchpoint.occurred_at + lookback)
                for t in new_touchpoints
            ],
        )
        affected += [c.conversion.conversion_id for c in new_conversions]
        if affected:
            await crediting.reattribute(conn, tenant_id, affected, policy.options, _now())
        if new_touchpoints or new_conversions:
            await repo.bump_generation(conn, tenant_id)

    async def subject_aliased(
        self, conn: asyncpg.Connection, tenant_id: str, message: ingest_events.SubjectAliased
    ) -> None:
        if not message.anonymous_id or not message.lead_id:
            return
        lead = repo.lead_key(message.lead_id)
        await repo.lock_subjects(conn, tenant_id, [lead, repo.anon_key(message.anonymous_id)])
        leads, anons = await self.erasure.blocked(
            conn, tenant_id, {message.lead_id}, {message.anonymous_id}
        )
        if leads or anons:
            return
        moved = await repo.merge_subject(conn, tenant_id, message.anonymous_id, message.lead_id)
        if not moved:
            return
        policy = await self._policies(tenant_id)
        ids = await repo.conversion_ids_of_subjects(conn, tenant_id, [lead])
        await crediting.reattribute(conn, tenant_id, ids, policy.options, _now())
        await repo.bump_generation(conn, tenant_id)

    async def stage_changed(
        self, conn: asyncpg.Connection, tenant_id: str, message: scoring_events.StageChanged
    ) -> None:
        event_id = message.metadata.event_id
        if not message.lead_id or not event_id:
            return
        key = repo.lead_key(message.lead_id)
        await repo.lock_subjects(conn, tenant_id, [key])
        leads, _ = await self.erasure.blocked(conn, tenant_id, {message.lead_id}, set())
        if leads:
            return
        policy = await self._policies(tenant_id)
        at = mapping.to_datetime(message.metadata.occurred_at)
        inserted = await repo.insert_stage_change(
            conn,
            tenant_id,
            repo.StageChangeRow(
                event_id, message.lead_id, at, int(message.from_stage), int(message.to_stage),
                message.reason,
            ),
        )  # fmt: skip
        if not inserted:
            return
        affected: list[str] = []
        if message.to_stage == lead_pb2.LIFECYCLE_STAGE_OPPORTUNITY:
            affected = await repo.conversions_touched(
                conn, tenant_id, [(key, at, at + policy.options.lookback_window)]
            )
        kind = stage_conversion_type(STAGE_NAMES.get(message.to_stage, ""), policy.conversion_types)
        new_conversions: list[repo.ConversionRow] = []
        if kind is not None:
            new_conversions = await repo.insert_conversions(
                conn,
                tenant_id,
                [
                    repo.ConversionRow(
                        Conversion(event_id, key, kind, at),
                        message.lead_id, "", message.home_brand_id, event_id, "stage",
                    )
                ],
            )  # fmt: skip
            affected += [c.conversion.conversion_id for c in new_conversions]
        if affected:
            await crediting.reattribute(conn, tenant_id, affected, policy.options, _now())
        if new_conversions:
            await repo.bump_generation(conn, tenant_id)
