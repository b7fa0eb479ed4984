"""The consumer of ingest's stream: one durable consumer for every ingest subject reporting
reads, so a subject's messages apply in stream order (an alias after the events it merges,
an erasure after the events it erases)."""

from __future__ import annotations

import asyncpg

from leadflow.ingest.v1 import events_pb2
from leadflow_platform.nats import Delivery, PoisonMessage
from leadflow_platform.nats.consumer import Handler
from leadflow_reporting.ingestion import Ingestion

DURABLE = "reporting-ingest-events"
STREAM = "INGEST"
SUBJECTS = (
    "ingest.event.recorded",
    "ingest.subject.identified",
    "ingest.subject.aliased",
    "ingest.subject.erased",
)


def handler(ingestion: Ingestion) -> Handler:
    async def handle(conn: asyncpg.Connection, delivery: Delivery) -> None:
        message = delivery.message
        tenant_id = delivery.tenant_id or getattr(
            getattr(message, "metadata", None), "tenant_id", ""
        )
        if not tenant_id:
            raise PoisonMessage("the message names no tenant")
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
