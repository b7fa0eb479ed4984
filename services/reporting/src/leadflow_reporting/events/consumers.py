"""The consumers: one durable consumer for every ingest subject reporting reads, so a
subject's messages apply in stream order (an alias after the events it merges, an erasure
after the events it erases); one each for the streams of scoring, attribution and routing."""

from __future__ import annotations

from typing import Any

import asyncpg

from leadflow.attribution.v1 import events_pb2 as attribution_events
from leadflow.ingest.v1 import events_pb2
from leadflow.routing.v1 import events_pb2 as routing_events
from leadflow.scoring.v1 import events_pb2 as scoring_events
from leadflow_platform.nats import Delivery, PoisonMessage
from leadflow_platform.nats.consumer import Handler
from leadflow_reporting.ingestion import Ingestion
from leadflow_reporting.outcomes import Outcomes

DURABLE = "reporting-ingest-events"
STREAM = "INGEST"
SUBJECTS = (
    "ingest.event.recorded",
    "ingest.subject.identified",
    "ingest.subject.aliased",
    "ingest.subject.erased",
)
# (durable, stream, subjects) of the other services' consumers.
OUTCOME_CONSUMERS = (
    (
        "reporting-scoring-events",
        "SCORING",
        ("scoring.score.changed", "scoring.threshold.crossed", "scoring.stage.changed"),
    ),
    ("reporting-attribution-events", "ATTRIBUTION", ("attribution.conversion.attributed",)),
    (
        "reporting-routing-events",
        "ROUTING",
        ("routing.lead.routed", "routing.assignment.breached", "routing.nurture.step_due"),
    ),
)


def _tenant(delivery: Delivery) -> str:
    message = delivery.message
    tenant_id = delivery.tenant_id or getattr(getattr(message, "metadata", None), "tenant_id", "")
    if not tenant_id:
        raise PoisonMessage("the message names no tenant")
    return str(tenant_id)


def handler(ingestion: Ingestion) -> Handler:
    async def handle(conn: asyncpg.Connection, delivery: Delivery) -> None:
        message = delivery.message
        tenant_id = _tenant(delivery)
        if isinstance(message, events_pb2.EventsRecorded):
            await ingestion.events_recorded(conn, tenant_id, message)
        elif isinstance(message, events_pb2.SubjectIdentified):
            await ingestion.subject_identified(conn, tenant_id, message)
        elif isinstance(message, events_pb2.SubjectAliased):
            await ingestion.subject_aliased(conn, tenant_id, message)
        elif isinstance(message, events_pb2.SubjectErased):
            await ingestion.subject_erased(conn, tenant_id, message)
        else:
            raise PoisonMessage(f"reporting does not read {delivery.subject}")

    return handle


def outcome_handler(outcomes: Outcomes) -> Handler:
    apply: dict[type, Any] = {
        scoring_events.ScoreChanged: outcomes.score_changed,
        scoring_events.ThresholdCrossed: outcomes.threshold_crossed,
        scoring_events.StageChanged: outcomes.stage_changed,
        attribution_events.ConversionAttributed: outcomes.conversion_attributed,
        routing_events.LeadRouted: outcomes.lead_routed,
        routing_events.AssignmentBreached: outcomes.assignment_breached,
        routing_events.NurtureStepDue: outcomes.nurture_step_due,
    }

    async def handle(conn: asyncpg.Connection, delivery: Delivery) -> None:
        method = apply.get(type(delivery.message))
        if method is None:
            raise PoisonMessage(f"reporting does not read {delivery.subject}")
        await method(conn, _tenant(delivery), delivery.message)

    return handle
