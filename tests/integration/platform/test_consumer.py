"""Consumers: redelivery never double-applies; poison ends in the dead-letter table."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from harness import SHORT_DUPLICATE_WINDOW, auth, eventually, new_key, running
from probe.contracts import probe_pb2, probe_pb2_grpc
from probe.service import SPEC, SUBJECT, apply_note

from leadflow.common.v1 import event_metadata_pb2
from leadflow_platform.grpc.client import open_channel
from leadflow_platform.nats import Consumer, ConsumerSpec
from leadflow_platform.nats import headers as h

pytestmark = pytest.mark.integration


async def _dead_letters(pool):
    return await pool.fetch("SELECT * FROM dead_letters ORDER BY id")


async def test_failing_message_is_dead_lettered_after_max_deliver_and_others_flow(settings):
    key = await new_key(settings.database_url, "acme")
    async with running(SPEC, settings) as runtime:
        async with open_channel(f"127.0.0.1:{runtime.server.port}") as channel:
            stub = probe_pb2_grpc.ProbeServiceStub(channel)
            await stub.Record(
                probe_pb2.RecordRequest(note="bad", consumer_fails=True), metadata=auth(key)
            )
            await stub.Record(probe_pb2.RecordRequest(note="good"), metadata=auth(key))
            rows = await eventually(lambda: _dead_letters(runtime.pool), timeout=20)
            good = await stub.Read(probe_pb2.ReadRequest(note="good"), metadata=auth(key))
            bad = await stub.Read(probe_pb2.ReadRequest(note="bad"), metadata=auth(key))
    assert len(rows) == 1
    row = rows[0]
    assert row["deliveries"] == settings.consumer_max_deliver
    assert "probe refuses note 'bad'" in row["reason"]
    assert row["consumer"] == "probe-probe-notes"
    assert row["subject"] == SUBJECT
    assert row["tenant_id"] == "acme"
    assert probe_pb2.NoteRecorded.FromString(row["payload"]).note == "bad"
    assert good.applied == 1
    assert bad.applied == 0


async def test_undecodable_message_is_dead_lettered_at_once(settings):
    async with running(SPEC, settings) as runtime:
        await runtime.bus.publish(
            SUBJECT, b"\xff\xff\xff not protobuf", {h.MSG_ID: "garbage-1", h.TENANT: "acme"}
        )
        rows = await eventually(lambda: _dead_letters(runtime.pool), timeout=10)
    assert rows[0]["deliveries"] == 1
    assert rows[0]["message_id"] == "garbage-1"
    assert "is not a valid leadflow_test.v1.NoteRecorded" in rows[0]["reason"]


async def test_same_message_twice_in_the_stream_is_applied_once(settings):
    """Past the stream's duplicate window a re-published message is stored again (a new
    stream sequence, the same Nats-Msg-Id); the consumer's inbox applies it once."""
    settings = settings.with_overrides(stream_duplicate_window_seconds=SHORT_DUPLICATE_WINDOW)
    async with running(SPEC, settings) as runtime:
        event = probe_pb2.NoteRecorded(
            metadata=event_metadata_pb2.EventMetadata(event_id="n1", tenant_id="acme"),
            note_id="n1",
            note="twice",
        )
        headers = {h.MSG_ID: "n1", h.TENANT: "acme"}
        first = await runtime.bus.publish(SUBJECT, event.SerializeToString(), headers)
        await asyncio.sleep(SHORT_DUPLICATE_WINDOW * 2.5)
        second = await runtime.bus.publish(SUBJECT, event.SerializeToString(), headers)
        assert second.seq == first.seq + 1 and not second.duplicate

        async def both_acknowledged() -> bool:
            info = await runtime.bus.js.consumer_info(
                runtime.bus.stream_name("PROBE"), runtime.bus.consumer_name("probe-probe-notes")
            )
            return info.ack_floor.stream_seq >= second.seq

        await eventually(both_acknowledged, timeout=10)
        applied = await runtime.pool.fetchval("SELECT count(*) FROM applied")
        inbox = await runtime.pool.fetchval("SELECT count(*) FROM inbox")
    assert applied == 1
    assert inbox == 1


async def test_last_delivery_lost_with_its_process_is_dead_lettered(
    settings, probe_pool, leaky_bus
):
    """Two processes take the message and die holding it (no ack, no nak): JetStream stops
    redelivering at max_deliver and says so in an advisory, which a live replica turns into
    a dead letter."""
    spec = ConsumerSpec(
        durable="probe-probe-notes",
        stream="PROBE",
        filter_subjects=(SUBJECT,),
        max_deliver=2,
        ack_wait_seconds=1.0,
        fetch_timeout_seconds=0.2,
    )
    pool, bus = probe_pool, leaky_bus

    def stuck_handler(started: asyncio.Event):
        async def handle(conn, delivery):
            started.set()
            await asyncio.Event().wait()  # never finishes: its process "dies" here

        return handle

    async def take_and_die() -> None:
        started = asyncio.Event()
        consumer = Consumer(spec, stuck_handler(started), pool=pool, bus=bus)
        await consumer.provision()
        task = asyncio.create_task(consumer.run(asyncio.Event()))
        await asyncio.wait_for(started.wait(), 10)
        task.cancel()  # its transaction rolls back; nothing acks or naks the message
        with contextlib.suppress(asyncio.CancelledError):
            await task

    event = probe_pb2.NoteRecorded(
        metadata=event_metadata_pb2.EventMetadata(event_id="lost", tenant_id="acme"),
        note_id="lost",
        note="lost",
    )
    await bus.publish(SUBJECT, event.SerializeToString(), {h.MSG_ID: "lost", h.TENANT: "acme"})
    await take_and_die()  # delivery 1
    await take_and_die()  # delivery 2, after ack_wait
    survivor = Consumer(spec, apply_note, pool=pool, bus=bus)
    stop = asyncio.Event()
    task = asyncio.create_task(survivor.run(stop))
    try:
        rows = await eventually(lambda: _dead_letters(pool), timeout=10)
    finally:
        stop.set()
        await task
    assert len(rows) == 1
    assert rows[0]["message_id"] == "lost"
    assert rows[0]["deliveries"] == 2
    assert rows[0]["reason"] == "no acknowledgement after 2 deliveries"
    assert await pool.fetchval("SELECT count(*) FROM applied") == 0
