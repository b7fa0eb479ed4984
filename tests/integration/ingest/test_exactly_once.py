"""Nothing acknowledged is lost, nothing is stored or published twice: with the ingest process
killed (SIGKILL) mid-stream and restarted, and with two replicas and two relays at once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections import Counter

import asyncpg
import grpc
import pytest
from harness import auth, eventually, new_key, running
from ingest_support import event, published
from processes import service_env

from leadflow.ingest.v1 import ingest_service_pb2 as pb
from leadflow.ingest.v1 import ingest_service_pb2_grpc
from leadflow_ingest.app import SPEC
from leadflow_platform.embedded import free_port
from leadflow_platform.grpc.client import health_status, open_channel

pytestmark = pytest.mark.integration
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
             grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}  # fmt: skip


def _batches(prefix: str, count: int, size: int) -> list[pb.TrackBatchRequest]:
    return [
        pb.TrackBatchRequest(
            events=[
                event(f"{prefix}-{b}-{i}", anonymous_id=f"v{(b * size + i) % 97}")
                for i in range(size)
            ]
        )
        for b in range(count)
    ]


async def _publication(settings) -> tuple[Counter[str], Counter[str]]:
    """How often each event id, and each Nats-Msg-Id, occurs in the stream."""
    messages = await published(settings.nats_url, settings.bus_namespace)
    events: Counter[str] = Counter()
    ids: Counter[str] = Counter()
    for msg_id, batch in messages:
        ids[msg_id] += 1
        events.update(e.event_id for e in batch.events)
    return events, ids


async def _wait_all_relayed(pool) -> None:
    async def drained() -> bool:
        left = await pool.fetchval("SELECT count(*) FROM ingest.outbox WHERE published_at IS NULL")
        return left == 0

    await eventually(drained, timeout=60)


async def test_kill_9_mid_stream_loses_nothing_acknowledged_and_doubles_nothing(settings):
    key = await new_key(settings.database_url, "371minds", "ingest")
    port = free_port()
    env = service_env(settings, LEADFLOW_GRPC_PORT=str(port), LEADFLOW_OUTBOX_BATCH_SIZE="5")
    target = f"127.0.0.1:{port}"

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "leadflow_ingest"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    async def serving() -> bool:
        return await health_status(target) == "SERVING"

    batches = _batches("kill", 60, 100)
    acknowledged: set[str] = set()
    process = start()
    kills = 0
    try:
        await eventually(serving, timeout=60)

        async def sender(mine: list[pb.TrackBatchRequest]) -> None:
            async with open_channel(target) as channel:
                stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
                for batch in mine:
                    while True:  # a client retries what was not acknowledged
                        try:
                            reply = await stub.TrackBatch(batch, metadata=auth(key), timeout=10)
                        except grpc.aio.AioRpcError as error:
                            assert error.code() in RETRYABLE, error
                            await asyncio.sleep(0.1)
                            continue
                        assert reply.accepted + reply.duplicate == len(batch.events)
                        acknowledged.update(r.event_id for r in reply.results)
                        break
                    # Paced, so that the kills below land while batches are in flight.
                    await asyncio.sleep(0.1)

        senders = [asyncio.create_task(sender(batches[i::3])) for i in range(3)]
        while not all(s.done() for s in senders) and kills < 4:
            await asyncio.sleep(0.6)
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
            process = start()
            await eventually(serving, timeout=60)
        await asyncio.gather(*senders)
        pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
        try:
            await _wait_all_relayed(pool)
            stored = {r["event_id"] for r in await pool.fetch("SELECT event_id FROM ingest.events")}
        finally:
            await pool.close()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)

    sent = {e.event_id for b in batches for e in b.events}
    assert kills >= 2
    assert acknowledged == sent  # every batch was acknowledged in the end...
    assert stored == sent  # ...and is stored, once (event_id is the key)
    events, msg_ids = await _publication(settings)
    assert set(events) == sent
    assert max(events.values()) == 1, "an event was published in two messages"
    assert max(msg_ids.values()) == 1, "a message was stored twice in the stream"


async def test_two_replicas_and_two_relays_store_and_publish_exactly_once(settings):
    key = await new_key(settings.database_url, "371minds", "ingest")
    batches = _batches("dual", 30, 100)
    async with running(SPEC, settings) as first, running(SPEC, settings) as second:
        async with (
            open_channel(f"127.0.0.1:{first.port}") as a,
            open_channel(f"127.0.0.1:{second.port}") as b,
        ):
            stubs = [ingest_service_pb2_grpc.IngestServiceStub(c) for c in (a, b)]
            # Every batch goes to both replicas at the same moment: a client retrying on
            # another replica while the first is still working on it.
            replies = await asyncio.gather(
                *(stub.TrackBatch(batch, metadata=auth(key)) for batch in batches for stub in stubs)
            )
        accepted = Counter(r.event_id for reply in replies for r in reply.results if r.status == 1)
        duplicates = Counter(
            r.event_id for reply in replies for r in reply.results if r.status == 2
        )
        await _wait_all_relayed(first.pool)
        stored = await first.pool.fetchval("SELECT count(*) FROM events")
    sent = {e.event_id for b in batches for e in b.events}
    assert set(accepted) == sent
    assert max(accepted.values()) == 1  # accepted by exactly one replica
    assert set(duplicates) == sent  # and answered duplicate by the other
    assert stored == len(sent)
    events, msg_ids = await _publication(settings)
    assert set(events) == sent
    assert max(events.values()) == 1
    assert max(msg_ids.values()) == 1
