"""Races between replicas, made deterministic: two connections of one database play two
attribution replicas, one holding its transaction open while the other runs into it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from harness import eventually, open_service_pool

from leadflow.common.v1 import event_type_pb2
from leadflow.ingest.v1 import events_pb2 as ingest_events
from leadflow_attribution.app import SPEC
from leadflow_attribution.domain.policy import TenantPolicy, tenant_policy
from leadflow_attribution.erasure import Erasure
from leadflow_attribution.ingestion import Ingestion

pytestmark = pytest.mark.integration

TENANT = "371minds"


async def _policy(_tenant_id: str) -> TenantPolicy:
    return tenant_policy({})[0]


async def _race(pool, first, second) -> None:
    """Run `first(conn)` in a transaction left open until `second(conn)`, on another
    connection, is waiting for a lock; then commit the first and let the second finish."""
    async with pool.acquire() as a, pool.acquire() as b:
        a_tx = a.transaction()
        await a_tx.start()
        try:
            await first(a)
            b_pid = b.get_server_pid()

            async def run_second() -> None:
                async with b.transaction():
                    await second(b)

            b_task = asyncio.create_task(run_second())

            async def waiting() -> bool:
                state = await pool.fetchval(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", b_pid
                )
                return state == "Lock"

            await eventually(waiting, timeout=10)
        except BaseException:
            await a_tx.rollback()
            raise
        await a_tx.commit()
        await b_task


def _recorded(*events: tuple[str, str, str, str, datetime]) -> ingest_events.EventsRecorded:
    """An ingest.event.recorded message of (event id, type, lead id, anonymous id, time)
    events; page views carry a display touch."""
    recorded = ingest_events.EventsRecorded()
    for event_id, kind, lead_id, anonymous_id, at in events:
        e = recorded.events.add(
            event_id=event_id, type=event_type_pb2.EventType.Value(f"EVENT_TYPE_{kind.upper()}")
        )
        e.subject.lead_id, e.subject.anonymous_id = lead_id, anonymous_id
        e.occurred_at.FromDatetime(at)
        if kind == "page_view":
            e.marketing.channel = "display"
    return recorded


@pytest.fixture
async def pool(settings):
    pool = await open_service_pool(settings.database_url, SPEC)
    yield pool
    await pool.close()


AT = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


async def test_an_alias_committed_while_a_visitor_event_waits_still_merges_it(pool):
    """Replica A merges visitor X into lead L while replica B records an event of X: B's
    touchpoint must join L's journey, not stay under X's key."""
    ingestion = Ingestion(_policy, Erasure())
    recorded = _recorded(
        ("x-t0", "page_view", "", "visitor-x", AT),
        ("l-signup", "signup", "lead-l", "", AT + timedelta(hours=1)),
    )
    alias = ingest_events.SubjectAliased(anonymous_id="visitor-x", lead_id="lead-l")
    await _race(
        pool,
        lambda conn: ingestion.subject_aliased(conn, TENANT, alias),
        lambda conn: ingestion.events_recorded(conn, TENANT, recorded),
    )
    rows = await pool.fetch("SELECT event_id, subject_key FROM touchpoints")
    assert [(r["event_id"], r["subject_key"]) for r in rows] == [("x-t0", "lead:lead-l")]
    journey = await pool.fetchval(
        "SELECT journey_length FROM conversions WHERE conversion_id = 'l-signup'"
    )
    assert journey == 1


async def test_an_erasure_committed_while_an_event_of_the_person_waits_drops_it(pool):
    """Replica A erases lead L while replica B records an event of L (and of L's visitor):
    nothing of L may be left once both committed."""
    ingestion = Ingestion(_policy, Erasure())
    recorded = _recorded(
        ("l-t1", "page_view", "lead-l", "", AT + timedelta(hours=1)),
        ("l-buy", "purchase", "lead-l", "", AT + timedelta(hours=2)),
        ("x-t1", "page_view", "", "visitor-x", AT),
        ("k-t1", "page_view", "lead-keep", "", AT),
    )
    await _race(
        pool,
        lambda conn: ingestion.erasure.erase(conn, TENANT, ["lead-l"], ["visitor-x"]),
        lambda conn: ingestion.events_recorded(conn, TENANT, recorded),
    )
    rows = await pool.fetch("SELECT event_id FROM touchpoints ORDER BY event_id")
    assert [r["event_id"] for r in rows] == ["k-t1"]
    assert await pool.fetchval("SELECT count(*) FROM conversions") == 0


async def test_a_replica_whose_first_transaction_rolled_back_hashes_with_the_committed_key(
    pool,
):
    """Replica A's first look at the tenant's erasure key happens in a transaction that
    rolls back; replica B then creates the key and erases a lead. A must recognise the
    erasure (it would not if it had kept the key that vanished with its rollback)."""
    a, b = Erasure(), Erasure()
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        assert await a.blocked(conn, TENANT, {"lead-l"}, set()) == (set(), set())
        await tx.rollback()
    async with pool.acquire() as conn, conn.transaction():
        await b.erase(conn, TENANT, ["lead-l"], [])
    async with pool.acquire() as conn:
        assert await a.blocked(conn, TENANT, {"lead-l", "lead-k"}, set()) == ({"lead-l"}, set())
