"""The fit job's lease across replicas: two FitJobs, each on its own pool of the same
database, as two attribution processes would run them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from harness import open_service_pool

from leadflow_attribution.app import SPEC
from leadflow_attribution.db import fits
from leadflow_attribution.db import repository as repo
from leadflow_attribution.domain.journey import Conversion, Touchpoint
from leadflow_attribution.domain.models import AttributionModel
from leadflow_attribution.domain.policy import TenantPolicy, tenant_policy
from leadflow_attribution.jobs.fitting import FitJob

pytestmark = pytest.mark.integration

TENANT = "371minds"
NOW = datetime.now(UTC).replace(microsecond=0)
START, END = NOW - timedelta(days=10), NOW
KEY = fits.FitKey(AttributionModel.MARKOV, 1, 90 * 86400, START, END)


async def _policy(_tenant_id: str) -> TenantPolicy:
    return tenant_policy({})[0]


def _job(pool, lease_seconds: float) -> FitJob:
    return FitJob(
        lambda: pool,
        _policy,
        interval_seconds=3600,
        refresh_seconds=300,
        max_age_seconds=86400,
        lease_seconds=lease_seconds,
    )


@pytest.fixture
async def pools(settings) -> AsyncIterator[tuple]:
    """Two pools on the attribution schema (one per replica), with four journeys stored
    (two converting) and the fit requested."""
    async with contextlib.AsyncExitStack() as stack:
        pair = []
        for _ in range(2):
            pool = await open_service_pool(settings.database_url, SPEC)
            stack.push_async_callback(pool.close)
            pair.append(pool)
        async with pair[0].acquire() as conn, conn.transaction():
            touchpoints, conversions = [], []
            for i, channel in enumerate(["email", "paid_search", "display", "email"]):
                key = repo.lead_key(f"lead-{i}")
                at = START + timedelta(days=1 + i)
                touchpoints.append(
                    repo.TouchpointRow(
                        Touchpoint(f"t{i}", at, channel), key, f"lead-{i}", "", 1, "", ""
                    )
                )
                if i % 2:
                    conversions.append(
                        repo.ConversionRow(
                            Conversion(f"c{i}", key, "purchase", at + timedelta(hours=1),
                                       Decimal(10), "USD"),
                            f"lead-{i}", "", "", f"c{i}", "event",
                        )
                    )  # fmt: skip
            await repo.insert_touchpoints(conn, TENANT, touchpoints)
            await repo.insert_conversions(conn, TENANT, conversions)
            await repo.bump_generation(conn, TENANT)
            await fits.request_fit(conn, TENANT, KEY)
        yield tuple(pair)


async def _fit_row(pool):
    return await pool.fetchrow(
        "SELECT computed_at, generation, journey_count, converting_journey_count,"
        " leased_until, lease_token FROM fits WHERE tenant_id = $1 AND fit_key = $2",
        TENANT,
        KEY.text,
    )


async def test_a_leased_fit_is_skipped_an_expired_one_taken_over_and_a_stale_result_refused(
    pools,
):
    pool_a, pool_b = pools
    a, b = _job(pool_a, lease_seconds=2.0), _job(pool_b, lease_seconds=30.0)

    held = await a.claim(NOW)
    assert held is not None and held.key == KEY and held.tenant_id == TENANT
    # No transaction is open while A holds the fit: only the lease in the row says so.
    open_transactions = await pool_b.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND state LIKE 'idle in transaction%'"
    )
    assert open_transactions == 0
    assert await b.claim(NOW) is None
    assert await b.run_once(NOW) is False

    result_a = await a.compute(held, NOW)  # A computes, then stalls past its lease
    await asyncio.sleep(2.2)
    taken = await b.claim(NOW)
    assert taken is not None and taken.key == KEY and taken.token != held.token

    # A's late result and its renewals are refused: the row is B's now.
    assert await a.store(held, result_a, NOW) is False
    async with pool_a.acquire() as conn:
        assert await fits.renew_lease(conn, held, 2.0) is False
    row = await _fit_row(pool_a)
    assert row["computed_at"] is None and row["lease_token"] == taken.token

    result_b = await b.compute(taken, NOW)
    assert await b.store(taken, result_b, NOW) is True
    row = await _fit_row(pool_a)
    assert row["computed_at"] == NOW and row["generation"] == 1
    assert (row["journey_count"], row["converting_journey_count"]) == (4, 2)
    assert row["leased_until"] is None and row["lease_token"] is None
    # Nothing is due any more, on either replica.
    assert await a.run_once(NOW) is False and await b.run_once(NOW) is False


async def test_a_live_holder_renews_its_lease_and_a_dead_one_loses_it(pools):
    pool_a, pool_b = pools
    a, b = _job(pool_a, lease_seconds=1.0), _job(pool_b, lease_seconds=30.0)
    held = await a.claim(NOW)
    assert held is not None
    keeper = asyncio.create_task(a.hold(held))
    await asyncio.sleep(2.2)  # more than two leases: renewed all along
    assert await b.claim(NOW) is None
    keeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await keeper
    await asyncio.sleep(1.1)  # no longer renewed: it runs out
    taken = await b.claim(NOW)
    assert taken is not None and taken.token != held.token
