"""The outbox relay publishes each committed row, and consumers apply each message once,
even when a relay dies between publishing and marking rows sent."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from harness import SHORT_DUPLICATE_WINDOW, eventually
from probe.contracts import probe_pb2
from probe.service import SPEC, SUBJECT, apply_note

from leadflow.common.v1 import event_metadata_pb2
from leadflow_platform.nats import Consumer, OutboxMessage, OutboxRelay, add_to_outbox
from leadflow_platform.nats.bus import Bus
from leadflow_platform.nats.consumer import ConsumerSpec

pytestmark = pytest.mark.integration
SUPPORT = Path(__file__).resolve().parents[2] / "support"


class RelayCrashed(Exception):
    pass


async def _write_notes(pool, count: int, *, chunk: int = 100) -> None:
    for start in range(0, count, chunk):
        async with pool.acquire() as conn, conn.transaction():
            messages = [
                OutboxMessage(
                    probe_pb2.NoteRecorded(
                        metadata=event_metadata_pb2.EventMetadata(
                            event_id=f"note-{i}", tenant_id="acme"
                        ),
                        note_id=f"note-{i}",
                        note=f"note-{i}",
                    ),
                    message_id=f"note-{i}",
                    tenant_id="acme",
                )
                for i in range(start, min(start + chunk, count))
            ]
            await add_to_outbox(conn, *messages)


async def _stream_messages(bus: Bus) -> int:
    info = await bus.js.stream_info(bus.stream_name(SPEC.stream.name))
    return info.state.messages


async def _consume_all(pool, bus, expected: int) -> Consumer:
    consumer = Consumer(
        ConsumerSpec(durable="probe-probe-notes", stream="PROBE", filter_subjects=(SUBJECT,)),
        apply_note,
        pool=pool,
        bus=bus,
    )
    await consumer.provision()
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))

    async def caught_up() -> bool:
        info = await bus.js.consumer_info(
            bus.stream_name("PROBE"), bus.consumer_name("probe-probe-notes")
        )
        return info.num_pending == 0 and info.num_ack_pending == 0

    await eventually(caught_up, timeout=60)
    stop.set()
    await task
    return consumer


async def _assert_each_applied_once(pool, expected: int) -> None:
    rows = await pool.fetch("SELECT note, count(*) AS n FROM applied GROUP BY note")
    assert len(rows) == expected
    assert {r["n"] for r in rows} == {1}


async def test_crash_between_publish_and_mark_is_published_again_and_applied_once(
    probe_pool, leaky_bus
):
    # A short duplicate window, so the republished copies really reach the stream and the
    # consumer's inbox is what keeps them from being applied twice.
    pool, bus = probe_pool, leaky_bus
    await _write_notes(pool, 250)

    async def crash(_: object) -> None:
        raise RelayCrashed

    crashing = OutboxRelay(pool, bus, schema="probe", batch_size=100, after_publish=crash)
    with pytest.raises(RelayCrashed):
        await crashing.relay_once()
    assert await _stream_messages(bus) == 100  # published...
    unmarked = await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    assert unmarked == 250  # ...but not marked sent

    await asyncio.sleep(SHORT_DUPLICATE_WINDOW * 2.5)  # past the duplicate window
    relay = OutboxRelay(pool, bus, schema="probe", batch_size=100)
    while await relay.relay_once():
        pass
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0
    assert await _stream_messages(bus) == 350  # the first 100 went out twice

    consumer = await _consume_all(pool, bus, 250)
    assert consumer.applied == 250
    await _assert_each_applied_once(pool, 250)


async def test_republish_inside_duplicate_window_is_dropped_by_jetstream(probe_pool, probe_bus):
    pool, bus = probe_pool, probe_bus
    await _write_notes(pool, 120)

    async def crash(_: object) -> None:
        raise RelayCrashed

    with pytest.raises(RelayCrashed):
        await OutboxRelay(pool, bus, schema="probe", after_publish=crash).relay_once()
    assert await OutboxRelay(pool, bus, schema="probe").relay_once() == 120
    assert await _stream_messages(bus) == 120


async def test_several_relays_at_once_publish_each_row_once(probe_pool, leaky_bus):
    pool, bus = probe_pool, leaky_bus  # the stream would not hide doubles
    await _write_notes(pool, 3000)
    stop = asyncio.Event()
    relays = [
        asyncio.create_task(
            OutboxRelay(pool, bus, schema="probe", batch_size=50, poll_seconds=0.05).run(stop)
        )
        for _ in range(4)
    ]

    async def all_marked() -> bool:
        left = await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        return left == 0

    await eventually(all_marked, timeout=60)
    stop.set()
    await asyncio.gather(*relays)
    assert await _stream_messages(bus) == 3000
    attempts = await pool.fetchval("SELECT max(publish_attempts) FROM outbox")
    assert attempts == 1


async def test_relay_killed_at_random_moments_loses_nothing_and_doubles_nothing(
    settings, probe_pool, leaky_bus
):
    """kill -9 a relay process again and again while it works; restart it each time."""
    pool, bus = probe_pool, leaky_bus
    total = 4000
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SUPPORT), *sys.path])}
    kills = 0
    await _write_notes(pool, total)
    rng = random.Random(7)
    while await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"):
        process = subprocess.Popen(
            [sys.executable, str(SUPPORT / "relay_process.py"), settings.database_url,
             settings.nats_url, settings.bus_namespace, "40"],
            env=env, stdout=subprocess.PIPE,
        )  # fmt: skip
        assert process.stdout is not None
        await asyncio.to_thread(process.stdout.readline)  # connected and relaying
        await asyncio.sleep(rng.uniform(0.02, 0.4))
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        assert kills < 200, "relay made no progress"
    assert kills >= 3
    # A kill between publish and mark-sent sends a batch again: the stream may hold copies,
    # never fewer than the rows, and each row is applied exactly once.
    assert await _stream_messages(bus) >= total
    consumer = await _consume_all(pool, bus, total)
    await _assert_each_applied_once(pool, total)
    assert consumer.applied == total


async def test_published_rows_record_their_stream_sequence_and_may_be_redacted(
    probe_pool, probe_bus
):
    pool, bus = probe_pool, probe_bus
    async with pool.acquire() as conn, conn.transaction():
        for i, redact in enumerate((False, True)):
            event = probe_pb2.NoteRecorded(note_id=f"r{i}", note=f"r{i}")
            await add_to_outbox(
                conn,
                OutboxMessage(
                    event, message_id=f"r{i}", tenant_id="acme", redact_after_publish=redact
                ),
            )
    assert await OutboxRelay(pool, bus, schema="probe").relay_once() == 2
    rows = await pool.fetch("SELECT message_id, payload, stream_sequence FROM outbox ORDER BY id")
    assert [r["stream_sequence"] for r in rows] == [1, 2]
    assert probe_pb2.NoteRecorded.FromString(rows[0]["payload"]).note == "r0"
    assert bytes(rows[1]["payload"]) == b""  # cleared once out...
    stored = await bus.js.get_msg(bus.stream_name("PROBE"), 2)
    assert probe_pb2.NoteRecorded.FromString(stored.data).note == "r1"  # ...but published whole


async def test_reconciliation_republishes_what_the_stream_lost(probe_pool, probe_bus):
    from leadflow_platform.nats.reconcile import reconcile_outbox

    pool, bus = probe_pool, probe_bus
    await _write_notes(pool, 30)
    assert await OutboxRelay(pool, bus, schema="probe").relay_once() == 30
    assert await reconcile_outbox(pool, bus, SPEC.stream) == 0  # nothing lost

    # The stream is lost (deleted, recreated empty): the outbox still knows what went out.
    await bus.js.delete_stream(bus.stream_name("PROBE"))
    await bus.ensure_stream(SPEC.stream)
    assert await reconcile_outbox(pool, bus, SPEC.stream) == 30
    assert await OutboxRelay(pool, bus, schema="probe").relay_once() == 30
    assert await _stream_messages(bus) == 30
    assert await reconcile_outbox(pool, bus, SPEC.stream) == 0


async def test_a_commit_notified_during_a_pass_is_relayed_without_waiting_for_the_poll(
    probe_pool, probe_bus
):
    pool, bus = probe_pool, probe_bus
    await _write_notes(pool, 1)
    written_during_pass = False

    async def write_another(_: object) -> None:
        nonlocal written_during_pass
        if not written_during_pass:
            written_during_pass = True
            async with pool.acquire() as conn, conn.transaction():
                note = probe_pb2.NoteRecorded(note_id="late", note="late")
                await add_to_outbox(conn, OutboxMessage(note, message_id="late", tenant_id="acme"))
            await asyncio.sleep(0.2)  # its NOTIFY arrives while this pass is still running

    stop = asyncio.Event()
    relay = OutboxRelay(pool, bus, schema="probe", poll_seconds=60, after_publish=write_another)
    task = asyncio.create_task(relay.run(stop))
    try:
        await eventually(lambda: _stream_messages(bus), timeout=10)
        started = asyncio.get_running_loop().time()
        await eventually(lambda: _equals(_stream_messages(bus), 2), timeout=20)
        assert asyncio.get_running_loop().time() - started < 10  # not the 60 s poll
    finally:
        stop.set()
        await task


async def _equals(awaitable, expected) -> bool:
    return (await awaitable) == expected
