"""The consumer of ingest's stream: one durable consumer for every ingest subject scoring
reads, so a subject's messages are applied in stream order (an alias after the events it
merges, an erasure after the events it erases). The messages of a fetch are applied in one
transaction (which records them in the inbox): consecutive ingest.event.recorded of a tenant
together, so a lead with events in several of them is rescored once; any other message
alone, in its place in the order."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from opentelemetry.context import Context

from leadflow.ingest.v1 import events_pb2
from leadflow_platform.nats import Delivery, PoisonMessage
from leadflow_platform.nats.consumer import BatchHandler, in_trace_of
from leadflow_scoring.ingestion import Ingestion

DURABLE = "scoring-ingest-events"
STREAM = "INGEST"
SUBJECTS = (
    "ingest.event.recorded",
    "ingest.subject.identified",
    "ingest.consent.changed",
    "ingest.subject.aliased",
    "ingest.subject.erased",
)


# Payload bytes per transaction. Small messages (a few events each: the steady state) are
# applied many per commit; ingest's largest (1,000 events, ~160 KB) one or two at a time: a
# longer transaction gains little there, and the leads it read unlocked are more often
# changed meanwhile by another replica (and computed again).
MAX_BATCH_BYTES = 256 * 1024


def handler(ingestion: Ingestion) -> BatchHandler:
    async def apply(conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
        run: list[events_pb2.EventsRecorded] = []
        traces: list[Context | None] = []  # each message's trace, for the leads it changes
        run_tenant = ""
        for delivery in deliveries:
            tenant_id = _tenant(delivery)
            message = delivery.message
            if run and (
                tenant_id != run_tenant or not isinstance(message, events_pb2.EventsRecorded)
            ):
                await ingestion.events_recorded(conn, run_tenant, *run, traces=traces)
                run, traces = [], []
            if isinstance(message, events_pb2.EventsRecorded):
                run.append(message)
                traces.append(delivery.trace_context)
                run_tenant = tenant_id
            else:
                with in_trace_of(delivery):
                    await _apply_one(ingestion, conn, tenant_id, delivery)
        if run:
            await ingestion.events_recorded(conn, run_tenant, *run, traces=traces)

    return BatchHandler(apply, max_bytes=MAX_BATCH_BYTES)


def _tenant(delivery: Delivery) -> str:
    tenant_id = delivery.tenant_id or getattr(
        getattr(delivery.message, "metadata", None), "tenant_id", ""
    )
    if not tenant_id:
        raise PoisonMessage("the message names no tenant")
    return tenant_id


async def _apply_one(
    ingestion: Ingestion, conn: asyncpg.Connection, tenant_id: str, delivery: Delivery
) -> None:
    message = delivery.message
    if isinstance(message, events_pb2.SubjectIdentified):
        await ingestion.subject_identified(conn, tenant_id, message)
    elif isinstance(message, events_pb2.ConsentChanged):
        await ingestion.consent_changed(conn, tenant_id, message)
    elif isinstance(message, events_pb2.SubjectAliased):
        await ingestion.subject_aliased(conn, tenant_id, message)
    elif isinstance(message, events_pb2.SubjectErased):
        await ingestion.subject_erased(conn, tenant_id, message)
    else:
        raise PoisonMessage(f"scoring does not read {delivery.subject}")
