"""Batch handlers: the messages of a fetch applied in one transaction, each still once, in
stream order; a failing batch falls back to one message per transaction."""

from __future__ import annotations

import asyncio

import pytest
from harness import SHORT_DUPLICATE_WINDOW, eventually
from probe.contracts import probe_pb2
from probe.service import SUBJECT, apply_note

from leadflow.common.v1 import event_metadata_pb2
from leadflow_platform.nats import Consumer, ConsumerSpec
from leadflow_platform.nats import headers as h
from leadflow_platform.nats.consumer import BatchHandler

pytestmark = pytest.mark.integration

SPEC = ConsumerSpec(
    durable="probe-probe-notes",
    stream="PROBE",
    filter_subjects=(SUBJECT,),
    max_deliver=2,
    backoff_seconds=(0.2,),
    # A message the server hands to a fetch the client just gave up on comes back only
    # after the ack wait: keep it short.
    ack_wait_seconds=2.0,
    fetch_timeout_seconds=0.5,
)


def _note(note_id: str, note: str = "", **fields) -> bytes:
    return probe_pb2.NoteRecorded(
        metadata=event_metadata_pb2.EventMetadata(event_id=note_id, tenant_id="acme"),
        note_id=note_id,
        note=note or note_id,
        **fields,
    ).SerializeToString()


async def _publish(bus, *notes: tuple[str, bytes]) -> None:
    for message_id, payload in notes:
        await bus.publish(SUBJECT, payload, {h.MSG_ID: message_id, h.TENANT: "acme"})


class Recorder:
    """A batch handler that applies each note as apply_note does and records its calls."""

    def __init__(self, max_bytes: int = 1 << 20) -> None:
        self.calls: list[list[str]] = []
        self.handler = BatchHandler(self._apply, max_bytes=max_bytes)

    async def _apply(self, conn, deliveries) -> None:
        self.calls.append([d.message_id for d in deliveries])
        for d in deliveries:
            await apply_note(conn, d)


async def _consume(pool, bus, recorder: Recorder, done) -> Consumer:
    consumer = Consumer(SPEC, recorder.handler, pool=pool, bus=bus)
    await consumer.provision()
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await eventually(done, timeout=15)
    finally:
        stop.set()
        await task
    return consumer


async def _applied(pool) -> list[str]:
    return [r["message_id"] for r in await pool.fetch("SELECT message_id FROM applied ORDER BY id")]


async def test_a_fetch_is_applied_in_one_transaction_in_stream_order(probe_pool, probe_bus):
    ids = [f"n{i}" for i in range(6)]
    await _publish(probe_bus, *[(i, _note(i)) for i in ids])
    recorder = Recorder()

    async def all_applied() -> bool:
        return len(await _applied(probe_pool)) == len(ids)

    consumer = await _consume(probe_pool, probe_bus, recorder, all_applied)
    assert recorder.calls == [ids]
    assert await _applied(probe_pool) == ids
    assert consumer.applied == len(ids)
    assert await probe_pool.fetchval("SELECT count(*) FROM inbox") == len(ids)


async def test_batches_hold_at_most_max_bytes_of_payload(probe_pool, probe_bus):
    ids = [f"n{i}" for i in range(5)]
    size = len(_note("n0"))
    await _publish(probe_bus, *[(i, _note(i)) for i in ids])
    recorder = Recorder(max_bytes=2 * size)

    async def all_applied() -> bool:
        return len(await _applied(probe_pool)) == len(ids)

    await _consume(probe_pool, probe_bus, recorder, all_applied)
    assert recorder.calls == [["n0", "n1"], ["n2", "n3"], ["n4"]]


async def test_messages_applied_before_are_left_out_and_a_copy_in_the_batch_counts_once(
    probe_pool, leaky_bus
):
    """n1 was applied by an earlier delivery; n2 is in the stream twice (re-published past
    the duplicate window) and both copies come in one fetch."""
    await _publish(leaky_bus, ("n1", _note("n1")))
    recorder = Recorder()
    await _consume(probe_pool, leaky_bus, recorder, lambda: _applied(probe_pool))
    await asyncio.sleep(SHORT_DUPLICATE_WINDOW * 2.5)
    await _publish(leaky_bus, ("n2", _note("n2")))
    await asyncio.sleep(SHORT_DUPLICATE_WINDOW * 2.5)
    await _publish(leaky_bus, ("n2", _note("n2")), ("n3", _note("n3")))
    # n1 again, as a redelivery would bring it: applied before, acknowledged only.
    await leaky_bus.publish(SUBJECT, _note("n1"), {h.MSG_ID: "n1", h.TENANT: "acme"})
    recorder = Recorder()

    async def caught_up() -> bool:
        info = await leaky_bus.js.consumer_info(
            leaky_bus.stream_name("PROBE"), leaky_bus.consumer_name(SPEC.durable)
        )
        return info.num_pending == 0 and info.num_ack_pending == 0

    await _consume(probe_pool, leaky_bus, recorder, caught_up)
    assert recorder.calls == [["n2", "n3"]]
    assert await _applied(probe_pool) == ["n1", "n2", "n3"]


async def test_a_failing_batch_is_applied_one_message_at_a_time(probe_pool, probe_bus):
    """The bad note fails the batch: the others are applied alone, the bad one retried
    and dead-lettered; a payload that does not decode is dead-lettered at once."""
    await _publish(
        probe_bus,
        ("n0", _note("n0")),
        ("bad", _note("bad", consumer_fails=True)),
        ("garbage", b"\xff\xff\xff not protobuf"),
        ("n1", _note("n1")),
    )
    recorder = Recorder()

    async def settled() -> bool:
        dead = await probe_pool.fetchval("SELECT count(*) FROM dead_letters")
        return dead == 2 and len(await _applied(probe_pool)) == 2

    await _consume(probe_pool, probe_bus, recorder, settled)
    assert await _applied(probe_pool) == ["n0", "n1"]
    dead = await probe_pool.fetch("SELECT message_id, reason FROM dead_letters ORDER BY id")
    assert {r["message_id"] for r in dead} == {"bad", "garbage"}
    assert recorder.calls[0] == ["n0", "bad", "n1"]  # the batch, rolled back
    assert ["n0"] in recorder.calls and ["n1"] in recorder.calls  # then each alone
