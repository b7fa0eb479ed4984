"""Routing's retention job: lead events go once they no longer count (30 days), decisions,
published outbox rows and finished deliveries once older than the tenant's retention; what
later decisions depend on stays (configuration, routes, assignments, enrolments, pending
deliveries)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from harness import eventually
from ingest_support import event, now
from routing_support import Clock, example_config, routing_env, routing_suite

from leadflow_platform.tenancy.store import TenantDirectory, update_tenant_settings
from leadflow_routing.jobs.retention import delete_expired

pytestmark = pytest.mark.integration

TABLES = (
    "lead_events",
    "decisions",
    "deliveries",
    "outbox",
    "configs",
    "routes",
    "assignments",
    "enrollments",
    "leads",
)


async def counts(s) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {t: await s.pool.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}


async def test_retention_deletes_what_is_past_its_use_and_keeps_what_decisions_need(
    settings, monkeypatch, tmp_path
):
    routing_env(monkeypatch, tmp_path)
    clock = Clock()
    async with routing_suite(settings, clock=clock) as s:
        await s.put_config(example_config())
        tenant_id = "371minds"  # the suite's API key's tenant
        async with s.pool.acquire() as conn:
            await update_tenant_settings(conn, tenant_id, {"retention_days": 40})
        # ModuMind's lead: a webhook that cannot be reached (its delivery stays pending);
        # EpicQuest's: a log sink (no delivery). Both routed when identified.
        await s.base.identify("lead-keep", email="k@example.com", home_brand_id="modumind")
        await s.base.identify("lead-log", email="l@example.com", home_brand_id="epicquest")
        at = now() - timedelta(minutes=1)
        await s.base.track(
            event("r-pv", type="page_view", lead_id="lead-keep", occurred_at=at),
            event("r-open", type="email_opened", lead_id="lead-log", occurred_at=at),
        )

        async def settled():  # type: ignore[no-untyped-def]
            found = await counts(s)
            published = await s.pool.fetchval(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL"
            )
            ready = found["lead_events"] == 2 and found["decisions"] >= 2 and published == 0
            return found if ready else None

        await eventually(settled, timeout=20)

        async def quiet():  # type: ignore[no-untyped-def]
            # scoring's threshold crossings may still bring decisions: wait until none came
            # for a while
            first = await counts(s)
            await asyncio.sleep(1.0)
            return first if await counts(s) == first else None

        before = await eventually(quiet, timeout=30)
        assert before["deliveries"] >= 1 and before["outbox"] >= 2
        # a finished delivery older than the retention goes; the pending one stays
        await s.pool.execute(
            "INSERT INTO deliveries (tenant_id, delivery_id, lead_id, brand_id, sink, body,"
            " state, next_attempt_at, created_at)"
            " SELECT tenant_id, 'done-1', lead_id, brand_id, sink, body, 'delivered',"
            " next_attempt_at, created_at FROM deliveries LIMIT 1"
        )
        directory = TenantDirectory(s.pool, cache_seconds=0)

        # day 20: nothing is past its use yet
        assert await delete_expired(s.pool, directory, clock.now + timedelta(days=20)) == {}
        # day 31: the events no longer count in the last 30 days
        deleted = await delete_expired(s.pool, directory, clock.now + timedelta(days=31))
        assert deleted == {
            tenant_id: {"lead_events": 2, "decisions": 0, "deliveries": 0, "outbox": 0}
        }
        # day 41: decisions, published events and finished deliveries are past 40 days
        deleted = await delete_expired(s.pool, directory, clock.now + timedelta(days=41))
        assert deleted[tenant_id]["decisions"] == before["decisions"]
        assert deleted[tenant_id]["outbox"] == before["outbox"]
        assert deleted[tenant_id]["deliveries"] == 1
        after = await counts(s)
        assert {t: after[t] for t in ("lead_events", "decisions", "outbox")} == {
            "lead_events": 0,
            "decisions": 0,
            "outbox": 0,
        }
        assert after["deliveries"] == before["deliveries"]  # pending: kept
        for kept in ("configs", "routes", "assignments", "enrollments", "leads"):
            assert after[kept] == before[kept], kept
        assert await s.pool.fetchval("SELECT state FROM deliveries") == "pending"

        # another tenant's rows are not touched by this tenant's retention
        async with s.pool.acquire() as conn:
            await update_tenant_settings(conn, "other-tenant", {"retention_days": 1})
        await s.pool.execute(
            "INSERT INTO lead_events (tenant_id, event_id, lead_id, name, occurred_at)"
            " VALUES ('371minds', 'fresh', 'lead-keep', 'page_view', $1)",
            clock.now,
        )
        assert await delete_expired(s.pool, directory, clock.now + timedelta(days=2)) == {}
        assert await s.pool.fetchval("SELECT count(*) FROM lead_events") == 1
