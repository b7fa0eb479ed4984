"""Routing's consumers: ingest (identify, alias, events, consent, erasure) and scoring
(score, threshold, stage). Each keeps routing's copy of the lead's facts and routes on the three
triggers, in the transaction that records the message in the inbox.

Threshold crossings route only upwards (a lead that cools is not handed to anyone); their
detail is "<dimension>:<new value>", e.g. "temperature:hot" or "grade:a_plus".

Events of a visitor not known as a lead yet are kept under its anonymous id; an alias or an
identification naming that id (before the decision it triggers) makes them the lead's, so
they count in its recent behaviour. Events with a lead id routing has not seen yet are kept
under that id and count once the lead is identified or scored.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
from google.protobuf import json_format

from leadflow.common.v1 import event_type_pb2
from leadflow.ingest.v1 import events_pb2 as ingest_events
from leadflow.ingest.v1 import profile_pb2
from leadflow.scoring.v1 import events_pb2 as scoring_events
from leadflow.scoring.v1 import lead_score_pb2, lifecycle_pb2
from leadflow_platform.nats import Delivery, PoisonMessage
from leadflow_platform.nats.consumer import Handler
from leadflow_routing.db import repository as repo
from leadflow_routing.domain.config import NurtureChannel
from leadflow_routing.domain.decision import Trigger
from leadflow_routing.domain.nurture import (
    StopReason,
    stop_for_consent,
    stop_for_event,
    stop_for_stage,
)
from leadflow_routing.domain.snapshot import (
    Grade,
    LeadScore,
    LifecycleStage,
    Segment,
    Temperature,
)
from leadflow_routing.service import RoutingService

INGEST_DURABLE = "routing-ingest-events"
INGEST_STREAM = "INGEST"
INGEST_SUBJECTS = (
    "ingest.event.recorded",
    "ingest.subject.identified",
    "ingest.subject.aliased",
    "ingest.consent.changed",
    "ingest.subject.erased",
)
SCORING_DURABLE = "routing-scoring-events"
SCORING_STREAM = "SCORING"
SCORING_SUBJECTS = (
    "scoring.score.changed",
    "scoring.threshold.crossed",
    "scoring.stage.changed",
)
_PROFILE_FIELDS = (
    "email",
    "first_name",
    "last_name",
    "phone",
    "company",
    "industry",
    "customer_type",
    "home_brand_id",
    "lead_source",
)
_CONSENTS = ("tracking", "email", "sms", "portfolio_sharing")


def _at(message: object) -> datetime:
    metadata = getattr(message, "metadata", None)
    if metadata is not None and metadata.HasField("occurred_at"):
        return metadata.occurred_at.ToDatetime(tzinfo=UTC)
    return datetime.now(UTC)


def _traits(profile: profile_pb2.LeadProfile) -> dict[str, object]:
    """The profile as routing's `lead.traits`: fields that are set, location flattened, then
    the free-form traits."""
    traits: dict[str, object] = {}
    for name in _PROFILE_FIELDS:
        value = getattr(profile, name)
        if value:
            traits[name] = value
    for name in ("city", "region", "country"):
        value = getattr(profile.location, name)
        if value:
            traits[name] = value
    if profile.interests:
        traits["interests"] = list(profile.interests)
    if profile.HasField("traits"):
        traits.update(json_format.MessageToDict(profile.traits))
    return traits


def _consents(state: profile_pb2.ConsentState) -> dict[str, bool]:
    out = {}
    for name in _CONSENTS:
        status = getattr(state, name).status
        if status == profile_pb2.CONSENT_STATUS_GRANTED:
            out[name] = True
        elif status == profile_pb2.CONSENT_STATUS_WITHDRAWN:
            out[name] = False
    return out


def _score(score: lead_score_pb2.LeadScore) -> repo.LeadFacts:
    c = score.components
    return repo.LeadFacts(
        score=LeadScore(
            total=score.total,
            demographic=c.demographic.value,
            behavioural=c.behavioural.value,
            firmographic=c.firmographic.value,
            engagement=c.engagement.value,
            intent=c.intent.value,
            model_version=score.model_version,
            scored_at=score.computed_at.ToDatetime(tzinfo=UTC)
            if score.HasField("computed_at")
            else None,
        ),
        grade=Grade(score.grade),
        temperature=Temperature(score.temperature),
    )


def _event_name(event_type: int, custom_name: str) -> str:
    if event_type == event_type_pb2.EVENT_TYPE_CUSTOM and custom_name:
        return custom_name
    return event_type_pb2.EventType.Name(event_type).removeprefix("EVENT_TYPE_").lower()  # type: ignore[arg-type]


class Consumers:
    def __init__(self, service: RoutingService) -> None:
        self.service = service

    def ingest_handler(self) -> Handler:
        async def handle(conn: asyncpg.Connection, delivery: Delivery) -> None:
            message = delivery.message
            tenant_id = _tenant(delivery)
            if isinstance(message, ingest_events.SubjectIdentified):
                await self.identified(conn, tenant_id, message)
            elif isinstance(message, ingest_events.SubjectAliased):
                if message.anonymous_id and message.lead_id:
                    await repo.claim_visitor_events(
                        conn, tenant_id, [message.anonymous_id], message.lead_id
                    )
            elif isinstance(message, ingest_events.EventsRecorded):
                await self.events_recorded(conn, tenant_id, message)
            elif isinstance(message, ingest_events.ConsentChanged):
                await self.consent_changed(conn, tenant_id, message)
            elif isinstance(message, ingest_events.SubjectErased):
                await self.service.erase(conn, tenant_id, list(message.lead_ids))
                await repo.erase_visitors(conn, tenant_id, list(message.anonymous_ids))
            else:
                raise PoisonMessage(f"routing does not read {delivery.subject}")

        return handle

    def scoring_handler(self) -> Handler:
        async def handle(conn: asyncpg.Connection, delivery: Delivery) -> None:
            message = delivery.message
            tenant_id = _tenant(delivery)
            if isinstance(message, scoring_events.ScoreChanged):
                await repo.upsert_lead(conn, tenant_id, message.lead_id, _score(message.score))
            elif isinstance(message, scoring_events.ThresholdCrossed):
                await self.threshold_crossed(conn, tenant_id, message)
            elif isinstance(message, scoring_events.StageChanged):
                await self.stage_changed(conn, tenant_id, message)
            else:
                raise PoisonMessage(f"routing does not read {delivery.subject}")

        return handle

    async def identified(
        self, conn: asyncpg.Connection, tenant_id: str, message: ingest_events.SubjectIdentified
    ) -> None:
        profile = message.profile
        facts = repo.LeadFacts(
            home_brand_id=profile.home_brand_id or None,
            traits=_traits(profile),
            segment=Segment(profile.segment) if profile.segment else None,
            consents=_consents(message.consent),
            seen_at=_at(message),
        )
        await repo.upsert_lead(conn, tenant_id, message.lead_id, facts)
        await repo.claim_visitor_events(
            conn, tenant_id, list(message.anonymous_ids), message.lead_id
        )
        await self.service.route(
            conn,
            tenant_id,
            message.lead_id,
            Trigger.IDENTIFIED,
            trigger_event_id=message.metadata.event_id,
        )

    async def events_recorded(
        self, conn: asyncpg.Connection, tenant_id: str, message: ingest_events.EventsRecorded
    ) -> None:
        rows = []
        stops: dict[str, StopReason] = {}
        for event in message.events:
            lead_id, anonymous_id = event.subject.lead_id, event.subject.anonymous_id
            if not (lead_id or anonymous_id) or event.flags.machine_generated:
                continue
            name = _event_name(event.type, event.custom_name)
            at = event.occurred_at.ToDatetime(tzinfo=UTC)
            rows.append((event.event_id, lead_id, anonymous_id, name, at))
            reason = stop_for_event(name) if lead_id else None
            if reason is not None:
                stops.setdefault(lead_id, reason)
        await repo.add_events(conn, tenant_id, rows)
        for lead_id, reason in stops.items():
            await self.service.stop_enrollments(
                conn,
                tenant_id,
                [lead_id],
                lambda _channels, r=reason: r,  # type: ignore[misc]
            )

    async def consent_changed(
        self, conn: asyncpg.Connection, tenant_id: str, message: ingest_events.ConsentChanged
    ) -> None:
        lead_id = message.subject.lead_id
        if not lead_id:
            return
        consents = _consents(message.consent)
        await repo.upsert_lead(conn, tenant_id, lead_id, repo.LeadFacts(consents=consents))
        email, sms = consents.get("email"), consents.get("sms")
        await self.service.stop_enrollments(
            conn, tenant_id, [lead_id], lambda channels: stop_for_consent(email, sms, channels)
        )

    async def threshold_crossed(
        self, conn: asyncpg.Connection, tenant_id: str, message: scoring_events.ThresholdCrossed
    ) -> None:
        await repo.upsert_lead(conn, tenant_id, message.lead_id, _score(message.score))
        if message.direction != scoring_events.CROSSING_DIRECTION_UP:
            return
        if message.WhichOneof("crossing") == "grade":
            detail = "grade:" + Grade(message.grade.to_grade).short_name
        else:
            detail = "temperature:" + Temperature(message.temperature.to_temperature).short_name
        await self.service.route(
            conn,
            tenant_id,
            message.lead_id,
            Trigger.THRESHOLD_CROSSED,
            trigger_detail=detail,
            trigger_event_id=message.metadata.event_id,
        )

    async def stage_changed(
        self, conn: asyncpg.Connection, tenant_id: str, message: scoring_events.StageChanged
    ) -> None:
        stage = LifecycleStage(message.to_stage)
        by_rule = message.trigger != lifecycle_pb2.TRANSITION_TRIGGER_API
        facts = repo.LeadFacts(
            stage=stage,
            stage_from=LifecycleStage(message.from_stage) if by_rule else None,
            home_brand_id=message.home_brand_id or None,
        )
        await repo.upsert_lead(conn, tenant_id, message.lead_id, facts)
        reason = stop_for_stage(stage)
        if reason is not None:
            await self.service.stop_enrollments(
                conn, tenant_id, [message.lead_id], lambda _: reason
            )
        await self.service.route(
            conn,
            tenant_id,
            message.lead_id,
            Trigger.STAGE_CHANGED,
            trigger_detail=stage.short_name,
            trigger_event_id=message.metadata.event_id,
        )


def _always(reason: StopReason) -> Callable[[frozenset[NurtureChannel]], StopReason]:
    return lambda _channels: reason


def _tenant(delivery: Delivery) -> str:
    tenant_id = delivery.tenant_id or getattr(
        getattr(delivery.message, "metadata", None), "tenant_id", ""
    )
    if not tenant_id:
        raise PoisonMessage("the message names no tenant")
    return str(tenant_id)
