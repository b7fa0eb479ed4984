"""Attribution's consumers: one durable consumer of ingest's stream (events, aliases,
erasures, in stream order per subject) and one of scoring's stage changes. Each handler
runs in the transaction that records the message in the inbox."""

from __future__ import annotations

import asyncpg

from leadflow.ingest.v1 import events_pb2 as ingest_events
from leadflow.scoring.v1 import events_pb2 as scoring_events
from leadflow_attribution.ingestion import Ingestion
from leadflow_platform.nats import Delivery, PoisonMessage
from leadflow_platform.nats.consumer import Handler

INGEST_DURABLE = "attribution-ingest-events"
INGEST_STREAM = "INGEST"
INGEST_SUBJECTS = ("ingest.event.recorded", "ingest.subject.aliased", "ingest.subject.erased")
SCORING_DURABLE = "attribution-scoring-stages"
SCORING_STREAM = "SCORING"
SCORING_SUBJECTS = ("scoring.stage.changed",)


def _tenant(delivery: Delivery) -> str:
    tenant_id = delivery.tenant_id or getattr(
        getattr(delivery.message, "metadata", None), "tenant_id", ""
    )
    if not tenant_id:
        raise PoisonMessage("the message names no tenant")
    return str(tenant_id)


def handler(ingestion: Ingestion) -> Handler:
    async def handle(conn: asyncpg.Connection, delivery: Delivery) -> None:
        tenant_id = _tenant(delivery)
        message = delivery.message
        if isinstance(message, ingest_events.EventsRecorded):
            await ingestion.events_recorded(conn, tenant_id, message)
        elif isinstance(message, ingest_events.SubjectAliased):
            await ingestion.subject_aliased(conn, tenant_id, message)
        elif isinstance(message, ingest_events.SubjectErased):
            await ingestion.erasure.erase(conn, tenant_id, message.lead_ids, message.anonymous_ids)
        elif isinstance(message, scoring_events.StageChanged):
            await ingestion.stage_changed(conn, tenant_id, message)
        else:
            raise PoisonMessage(f"attribution does not read {delivery.subject}")

    return handle
