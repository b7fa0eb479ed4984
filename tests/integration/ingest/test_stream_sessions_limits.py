"""TrackStream acknowledgements, sessions, rate limits, API keys and retention."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest
from harness import auth, new_key
from ingest_support import event

from leadflow.ingest.v1 import ingest_service_pb2 as pb
from leadflow_ingest.jobs.retention import delete_expired
from leadflow_platform.tenancy.store import revoke_key, update_tenant_settings

pytestmark = pytest.mark.integration


async def test_track_stream_acknowledges_each_request_after_commit_in_order(ingest, writer_key):
    async def requests():
        for n in range(1, 6):
            yield pb.TrackStreamRequest(
                sequence=n * 10,
                events=[event(f"s{n}-{i}", anonymous_id="streamer") for i in range(n)]
                + [event("", anonymous_id="")],  # one bad event per request
            )
            await asyncio.sleep(0)

    acks = [a async for a in ingest.stub.TrackStream(requests(), metadata=auth(writer_key))]
    assert [a.sequence for a in acks] == [10, 20, 30, 40, 50]
    assert [(a.received, a.accepted, a.rejected) for a in acks] == [
        (n + 1, n, 1) for n in range(1, 6)
    ]
    assert await ingest.pool.fetchval("SELECT count(*) FROM events") == 15


async def test_sessions_split_after_thirty_idle_minutes(ingest, writer_key):
    start = datetime.now(UTC) - timedelta(hours=3)
    minutes = [0, 5, 20, 55, 56, 120]  # gaps of 35 and 64 minutes start new sessions
    events = [
        event(f"v{m}", anonymous_id="browser-1", occurred_at=start + timedelta(minutes=m))
        for m in minutes
    ]
    events.append(event("click", anonymous_id="browser-1", type="click",
                        occurred_at=start + timedelta(minutes=121)))  # fmt: skip
    events.append(event("client", anonymous_id="browser-1", session_id="client-session",
                        occurred_at=start))  # fmt: skip
    reply = await ingest.stub.TrackBatch(
        pb.TrackBatchRequest(events=events), metadata=auth(writer_key)
    )
    assert reply.accepted == len(events)
    rows = await ingest.pool.fetch(
        "SELECT event_id, session_id FROM events ORDER BY occurred_at, event_id"
    )
    session = {r["event_id"]: r["session_id"] for r in rows}
    assert session["v0"] == session["v5"] == session["v20"]
    assert session["v55"] == session["v56"] != session["v0"]
    assert session["v120"] == session["click"] not in (session["v0"], session["v55"])
    assert session["client"] == "client-session"
    stats = {
        r["session_id"]: r
        for r in await ingest.pool.fetch(
            "SELECT session_id, event_count, page_views, duration, client_assigned, bounce, open"
            " FROM session_overview"
        )
    }
    assert stats[session["v0"]]["event_count"] == 3
    assert stats[session["v0"]]["duration"] == timedelta(minutes=20)
    assert stats[session["v120"]]["page_views"] == 1  # a bounce: one page view (and a click)
    assert stats[session["v120"]]["bounce"] is True
    assert stats[session["v120"]]["open"] is True  # the subject's latest session
    assert stats[session["v0"]]["open"] is False  # closed, kept in the sessions table
    assert stats["client-session"]["client_assigned"] is True

    # The next batch continues the open session when it comes within 30 minutes.
    later = [event("v130", anonymous_id="browser-1", occurred_at=start + timedelta(minutes=130))]
    await ingest.stub.TrackBatch(pb.TrackBatchRequest(events=later), metadata=auth(writer_key))
    continued = await ingest.pool.fetchval("SELECT session_id FROM events WHERE event_id = 'v130'")
    assert continued == session["v120"]
    assert (
        await ingest.pool.fetchval(
            "SELECT event_count FROM session_overview WHERE session_id = $1", continued
        )
        == 3
    )


async def test_rate_limit_answers_resource_exhausted_with_retry_after(ingest, settings):
    key = await new_key(settings.database_url, "small-tenant", "ingest")
    other = await new_key(settings.database_url, "other-tenant", "ingest")
    conn = await asyncpg.connect(settings.database_url)
    try:
        await update_tenant_settings(conn, "small-tenant", {"ingest_events_per_second": 100})
    finally:
        await conn.close()
    batch = pb.TrackBatchRequest(events=[event(f"r{i}", anonymous_id="a") for i in range(1000)])
    first = await ingest.stub.TrackBatch(batch, metadata=auth(key))  # the burst allows one
    assert first.accepted == 1000
    with pytest.raises(grpc.aio.AioRpcError) as limited:
        await ingest.stub.TrackBatch(batch, metadata=auth(key))
    error = limited.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    retry_after = dict(error.trailing_metadata())["retry-after"]
    assert 5 <= int(retry_after) <= 11  # ~10 s to earn 1,000 tokens at 100/s
    # Another tenant is not slowed down by this one.
    assert (await ingest.stub.TrackBatch(batch, metadata=auth(other))).accepted == 1000


async def test_keys_wrong_revoked_and_without_the_scope_are_refused(ingest, settings, writer_key):
    reader = await new_key(settings.database_url, "371minds", "read")
    one = pb.TrackRequest(event=event("k1", anonymous_id="a"))

    async def code(call) -> grpc.StatusCode:
        try:
            await call
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    wrong = "lf_aaaaaaaaaaaa_" + "x" * 43
    assert (
        await code(ingest.stub.Track(one, metadata=auth(wrong))) == grpc.StatusCode.UNAUTHENTICATED
    )
    assert await code(ingest.stub.Track(one)) == grpc.StatusCode.UNAUTHENTICATED
    assert (
        await code(ingest.stub.Track(one, metadata=auth(reader)))
        == grpc.StatusCode.PERMISSION_DENIED
    )
    erase = pb.EraseSubjectRequest(lead_id="x")
    assert await code(ingest.stub.EraseSubject(erase, metadata=auth(writer_key))) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert await code(ingest.stub.Track(one, metadata=auth(writer_key))) == grpc.StatusCode.OK
    conn = await asyncpg.connect(settings.database_url)
    try:
        await revoke_key(conn, writer_key.split("_")[1])
    finally:
        await conn.close()
    await asyncio.sleep(settings.auth_cache_seconds + 0.1)
    assert await code(ingest.stub.Track(one, metadata=auth(writer_key))) == (
        grpc.StatusCode.UNAUTHENTICATED
    )


async def test_retention_deletes_rows_older_than_the_tenants_retention(
    ingest, writer_key, settings
):
    t = datetime.now(UTC)
    events = [
        event("recent", anonymous_id="a", occurred_at=t - timedelta(days=1)),
        event("old", anonymous_id="b", occurred_at=t - timedelta(days=40)),
    ]
    await ingest.stub.TrackBatch(pb.TrackBatchRequest(events=events), metadata=auth(writer_key))
    deleted = await delete_expired(ingest.pool, ingest.runtime.tenants, t)
    assert deleted == {}  # within the default 365 days
    conn = await asyncpg.connect(settings.database_url)
    try:
        await update_tenant_settings(conn, "371minds", {"retention_days": 30})
    finally:
        await conn.close()
    ingest.runtime.tenants._cache.clear()
    deleted = await delete_expired(ingest.pool, ingest.runtime.tenants, t)
    assert deleted["371minds"]["events"] == 1
    assert deleted["371minds"]["subjects"] == 1  # with the open session it held
    assert await ingest.pool.fetchval("SELECT count(*) FROM session_overview") == 1
    assert [r["event_id"] for r in await ingest.pool.fetch("SELECT event_id FROM events")] == [
        "recent"
    ]
