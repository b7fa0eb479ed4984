"""One trace from a gRPC call, through the outbox and JetStream, into the consumer; and one
per message when a batch handler applies several messages together."""

from __future__ import annotations

import asyncio

import pytest
from harness import auth, eventually, new_key, running
from opentelemetry.trace import SpanKind
from probe.contracts import probe_pb2, probe_pb2_grpc
from probe.service import SPEC, SUBJECT, apply_note

from leadflow.common.v1 import event_metadata_pb2
from leadflow_platform.grpc.client import open_channel
from leadflow_platform.nats import Consumer, ConsumerSpec, OutboxMessage, add_to_outbox
from leadflow_platform.nats import headers as h
from leadflow_platform.nats.bus import Bus
from leadflow_platform.nats.consumer import BatchHandler
from leadflow_platform.telemetry import tracer

pytestmark = pytest.mark.integration


async def test_trace_continues_from_the_call_into_the_consumer(settings, spans):
    key = await new_key(settings.database_url, "acme", "admin")
    async with running(SPEC, settings) as runtime:
        async with open_channel(f"127.0.0.1:{runtime.server.port}") as channel:
            stub = probe_pb2_grpc.ProbeServiceStub(channel)
            with tracer().start_as_current_span("caller") as caller:
                await stub.Record(probe_pb2.RecordRequest(note="traced"), metadata=auth(key))
            trace_id = caller.get_span_context().trace_id

            def consumer_span():
                return [
                    s
                    for s in spans.get_finished_spans()
                    if s.kind == SpanKind.CONSUMER and s.context.trace_id == trace_id
                ]

            await eventually(consumer_span, timeout=10)
    in_trace = {s.context.span_id: s for s in spans.get_finished_spans()
                if s.context.trace_id == trace_id}  # fmt: skip

    def chain(span) -> list[str]:
        names = []
        while span is not None:
            names.append(f"{span.kind.name}:{span.name}")
            span = in_trace.get(span.parent.span_id) if span.parent else None
        return names

    (consumed,) = consumer_span()
    assert chain(consumed) == [
        "CONSUMER:probe.note.recorded process",
        "PRODUCER:probe.note.recorded publish",
        "SERVER:/leadflow_test.v1.ProbeService/Record",
        "CLIENT:/leadflow_test.v1.ProbeService/Record",
        "INTERNAL:caller",
    ]
    server = next(s for s in in_trace.values() if s.kind == SpanKind.SERVER)
    assert server.attributes["leadflow.tenant_id"] == "acme"
    # the database work of the call and of the consumer belongs to the same trace
    assert any(s.kind == SpanKind.CLIENT and "INSERT" in s.name for s in in_trace.values())


async def test_each_message_of_a_batch_continues_its_own_trace(settings, spans, probe_pool):
    """Three messages from three traces applied in one transaction: the batch's span is a
    new trace linked to the three producers; each message gets a CONSUMER span in its own
    trace, and an event the handler writes for it (`trace_context`) is published from there.
    When the batch fails, the messages' spans say so and each is then processed alone."""
    bus = await Bus.connect(settings.nats_url, name="test", namespace=settings.bus_namespace)
    await bus.ensure_stream(SPEC.stream)
    producers = {}
    for note_id in ("n0", "n1", "n2"):
        with tracer().start_as_current_span(f"produce {note_id}") as producer:
            note = probe_pb2.NoteRecorded(
                metadata=event_metadata_pb2.EventMetadata(event_id=note_id, tenant_id="acme"),
                note_id=note_id,
                note=note_id,
            )
            headers = {h.MSG_ID: note_id, h.TENANT: "acme", **h.trace_headers()}
            await bus.publish(SUBJECT, note.SerializeToString(), headers)
        producers[note_id] = producer.get_span_context()
    calls: list[list[str]] = []

    async def apply(conn, deliveries) -> None:
        calls.append([d.message_id for d in deliveries])
        for d in deliveries:
            follow_up = probe_pb2.NoteRecorded(
                metadata=event_metadata_pb2.EventMetadata(event_id=f"{d.message_id}-next"),
                note_id=f"{d.message_id}-next",
            )
            await add_to_outbox(
                conn,
                OutboxMessage(
                    follow_up,
                    message_id=f"{d.message_id}-next",
                    tenant_id="acme",
                    trace_context=d.trace_context,
                ),
            )
            if not (len(deliveries) > 1 and d.message_id == "n2"):
                await apply_note(conn, d)
            else:
                raise RuntimeError("n2 spoils the batch")

    spec = ConsumerSpec(
        durable="probe-probe-traced",
        stream="PROBE",
        filter_subjects=(SUBJECT,),
        fetch_timeout_seconds=0.5,
    )
    consumer = Consumer(spec, BatchHandler(apply), pool=probe_pool, bus=bus)
    await consumer.provision()
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:

        async def all_applied() -> bool:
            return await probe_pool.fetchval("SELECT count(*) FROM applied") == 3

        await eventually(all_applied, timeout=15)
    finally:
        stop.set()
        await task
        await bus.drain()
    assert calls[0] == ["n0", "n1", "n2"]  # one batch, rolled back; then each alone
    assert sorted(calls[1:]) == [["n0"], ["n1"], ["n2"]]

    finished = spans.get_finished_spans()
    (batch,) = [
        s
        for s in finished
        if s.kind == SpanKind.CONSUMER and "messaging.batch.message_count" in s.attributes
    ]
    assert batch.parent is None
    assert {link.context.span_id for link in batch.links} == {p.span_id for p in producers.values()}
    for note_id, producer in producers.items():
        mine = [
            s
            for s in finished
            if s.kind == SpanKind.CONSUMER and s.attributes.get("messaging.message.id") == note_id
        ]
        # the batch's span of the message (failed, linked to the batch), then its own
        in_batch = [s for s in mine if s.links]
        alone = [s for s in mine if not s.links]
        assert len(in_batch) == 1 and len(alone) == 1
        assert in_batch[0].links[0].context.span_id == batch.context.span_id
        assert in_batch[0].status.status_code.name == "ERROR"
        for span in mine:
            assert span.context.trace_id == producer.trace_id
            assert span.parent.span_id == producer.span_id
    # The follow-ups that committed (from the messages applied alone) name their message's
    # trace: their PRODUCER span is a child of that message's CONSUMER span.
    rows = await probe_pool.fetch("SELECT message_id, headers FROM outbox ORDER BY id")
    assert [r["message_id"] for r in rows] == ["n0-next", "n1-next", "n2-next"]
    by_id = {s.context.span_id: s for s in finished}
    for row in rows:
        note_id = row["message_id"].removesuffix("-next")
        publish = by_id[int(dict(row["headers"])[h.TRACEPARENT].split("-")[2], 16)]
        assert publish.kind == SpanKind.PRODUCER
        parent = by_id[publish.parent.span_id]
        assert parent.kind == SpanKind.CONSUMER
        assert parent.attributes["messaging.message.id"] == note_id
        assert parent.context.trace_id == producers[note_id].trace_id
