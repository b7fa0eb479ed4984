"""The probe service: Record writes a note and its event in one transaction; a consumer
applies the events; Read tells how often each note was applied."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from google.protobuf.timestamp_pb2 import Timestamp

from leadflow.common.v1 import event_metadata_pb2
from leadflow_platform.errors import InvalidArgument
from leadflow_platform.grpc import current_tenant
from leadflow_platform.lifecycle import Runtime
from leadflow_platform.nats import Delivery, OutboxMessage, add_to_outbox, registry
from leadflow_platform.service import ServiceSpec
from probe.contracts import probe_pb2, probe_pb2_grpc

registry.register(probe_pb2.NoteRecorded)
SUBJECT = "probe.note.recorded"


class ProbeServicer(probe_pb2_grpc.ProbeServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    async def Record(self, request, context):
        if request.invalid_field:
            raise InvalidArgument.field(request.invalid_field, "is not acceptable")
        tenant = current_tenant()
        note_id = str(uuid.uuid4())
        async with self._rt.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO notes (note_id, tenant_id, note) VALUES ($1, $2, $3)",
                note_id,
                tenant,
                request.note,
            )
            now = Timestamp()
            now.GetCurrentTime()
            event = probe_pb2.NoteRecorded(
                metadata=event_metadata_pb2.EventMetadata(
                    event_id=note_id, tenant_id=tenant, occurred_at=now, producer="probe"
                ),
                note_id=note_id,
                note=request.note,
                consumer_sleep_ms=request.consumer_sleep_ms,
                consumer_fails=request.consumer_fails,
            )
            await add_to_outbox(conn, OutboxMessage(event, message_id=note_id, tenant_id=tenant))
            if request.rpc_sleep_ms:
                await asyncio.sleep(request.rpc_sleep_ms / 1000)
        return probe_pb2.RecordResponse(note_id=note_id, tenant_id=tenant)

    async def Read(self, request, context):
        count = await self._rt.pool.fetchval(
            "SELECT count(*) FROM applied WHERE note = $1", request.note
        )
        return probe_pb2.ReadResponse(applied=count)

    async def Watch(self, request, context):
        rows = await self._rt.pool.fetch(
            "SELECT note_id, tenant_id FROM notes WHERE note = $1 AND tenant_id = $2",
            request.note,
            current_tenant(),
        )
        for row in rows:
            yield probe_pb2.RecordResponse(note_id=row["note_id"], tenant_id=row["tenant_id"])

    async def Configure(self, request, context):
        return probe_pb2.ReadResponse(applied=-1)

    async def Unscoped(self, request, context):
        return probe_pb2.ReadResponse(applied=-2)


async def apply_note(conn: asyncpg.Connection, delivery: Delivery) -> None:
    event = delivery.message
    if event.consumer_fails:
        raise RuntimeError(f"probe refuses note {event.note!r}")
    if event.consumer_sleep_ms:
        await asyncio.sleep(event.consumer_sleep_ms / 1000)
    await conn.execute(
        "INSERT INTO applied (note_id, note, message_id) VALUES ($1, $2, $3)",
        event.note_id,
        event.note,
        delivery.message_id,
    )


def build(runtime: Runtime) -> None:
    runtime.add_servicer(
        probe_pb2_grpc.add_ProbeServiceServicer_to_server,
        ProbeServicer(runtime),
        "leadflow_test.v1.ProbeService",
    )
    runtime.add_consumer(
        runtime.consumer_spec("probe-probe-notes", "PROBE", (SUBJECT,)), apply_note
    )
    runtime.enable_outbox_relay()


SPEC = ServiceSpec(name="probe", build=build, migrations_package="probe.migrations")
