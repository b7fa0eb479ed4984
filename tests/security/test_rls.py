"""Row-level security as defence in depth: whatever the services' SQL says, a request's
database session sees and writes one tenant's rows only.

Two tenants' data go in through the services' APIs; then, on the database itself: every
table with a tenant_id column has row security enabled and forced; the tenant role is no
superuser, cannot bypass row security and owns nothing; as that role with tenant A set, no
row of B is visible (and every row of A is), no row of B can be written; with no tenant set
nothing is visible; and a request really runs as that role (revoking the role's access to
one table breaks exactly the RPC that reads it).
"""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import grpc
import pytest
from harness import eventually
from ingest_support import now, ts
from isolation_support import TenantData, World, tenant_data, tenant_tables, world

from leadflow.common.v1 import time_range_pb2
from leadflow.reporting.v1 import reporting_service_pb2 as reporting_pb
from leadflow.scoring.v1 import scoring_service_pb2 as scoring_pb
from leadflow_platform.db.row_security import TENANT_ROLE, TENANT_SETTING, acting_for

pytestmark = pytest.mark.integration

A, B = "tenant-a", "tenant-b"


@pytest.fixture
def routing_settings(monkeypatch, tmp_path) -> None:
    from routing_support import routing_env

    routing_env(monkeypatch, tmp_path)


async def _counts(conn: asyncpg.Connection, tables: list[str], where: str = "true") -> dict:
    return {t: await conn.fetchval(f"SELECT count(*) FROM {t} WHERE {where}") for t in tables}


async def test_tenant_role_sees_and_writes_one_tenant_only(settings, routing_settings) -> None:
    async with world(settings) as w:
        a = await w.load(tenant_data(A, "qxa"))
        b = await w.load(tenant_data(B, "zvb"))
        async with w.admin() as conn:
            tables = await tenant_tables(conn)
            assert len(tables) >= 60, tables  # every service schema and tenancy
            await _row_security_is_forced(conn, tables)
            await _role_is_powerless(conn)
            owner_a = await _counts(conn, tables, f"tenant_id = '{A}'")
            owner_b = await _counts(conn, tables, f"tenant_id = '{B}'")
            # Both tenants have rows in the tables that matter, so "sees none of B" means
            # something.
            for table in ('"ingest"."events"', '"scoring"."leads"', '"attribution"."credits"',
                          '"routing"."assignments"', '"reporting"."events"'):  # fmt: skip
                assert owner_a[table] > 0 and owner_b[table] > 0, table

            await conn.execute(f"SET ROLE {TENANT_ROLE}")
            # Never set in this session: nothing at all.
            assert set((await _counts(conn, tables)).values()) == {0}
            await conn.execute(f"SELECT set_config('{TENANT_SETTING}', $1, false)", A)
            assert await _counts(conn, tables) == owner_a
            assert set((await _counts(conn, tables, f"tenant_id = '{B}'")).values()) == {0}
            await _cannot_write_other_tenant(conn, w, tables, a, b)
            await conn.execute(f"RESET {TENANT_SETTING}")
            assert set((await _counts(conn, tables)).values()) == {0}
            await conn.execute("RESET ROLE")

        await _pool_switches_per_request(w, tables, owner_a)
        await _rpc_runs_as_tenant_role(w, a)
        await _work_started_by_rpcs_completes(w, a)


async def _row_security_is_forced(conn: asyncpg.Connection, tables: list[str]) -> None:
    for table in tables:
        row = await conn.fetchrow(
            "SELECT relrowsecurity, relforcerowsecurity,"
            " (SELECT count(*) FROM pg_policy WHERE polrelid = c.oid) AS policies"
            " FROM pg_class c WHERE c.oid = $1::regclass",
            table,
        )
        assert row["relrowsecurity"] and row["relforcerowsecurity"], table
        assert row["policies"] >= 1, table


async def _role_is_powerless(conn: asyncpg.Connection) -> None:
    role = await conn.fetchrow("SELECT * FROM pg_roles WHERE rolname = $1", TENANT_ROLE)
    assert role is not None
    assert not role["rolsuper"] and not role["rolbypassrls"] and not role["rolcanlogin"]
    assert not role["rolcreaterole"] and not role["rolcreatedb"]
    owned = await conn.fetchval(
        "SELECT (SELECT count(*) FROM pg_class WHERE relowner = r.oid)"
        " + (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid)"
        " + (SELECT count(*) FROM pg_proc WHERE proowner = r.oid)"
        " + (SELECT count(*) FROM pg_type WHERE typowner = r.oid)"
        " FROM pg_roles r WHERE r.rolname = $1",
        TENANT_ROLE,
    )
    assert owned == 0
    # Not a member of any role that could lend it those powers.
    assert not await conn.fetchval(
        "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member"
        " WHERE r.rolname = $1",
        TENANT_ROLE,
    )


async def _cannot_write_other_tenant(
    conn: asyncpg.Connection, w: World, tables: list[str], a: TenantData, b: TenantData
) -> None:
    """Session: tenant role, tenant A. Copies of B's rows cannot be inserted; B's rows
    cannot be updated or deleted (invisible); A's rows cannot be moved to B."""
    async with w.admin() as owner:
        samples = {}
        for table in tables:
            row = await owner.fetchval(
                f"SELECT to_jsonb(t)::text FROM {table} t WHERE tenant_id = $1 LIMIT 1", B
            )
            if row is not None:
                samples[table] = row
    assert len(samples) >= 20, sorted(samples)
    for table, row in samples.items():
        # Generated columns are computed, not inserted.
        columns = ", ".join(
            f'"{name}"'
            for name in await conn.fetchval(
                "SELECT array_agg(attname ORDER BY attnum) FROM pg_attribute WHERE attrelid ="
                " $1::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''",
                table,
            )
        )
        tx = conn.transaction()
        await tx.start()
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
                await conn.execute(
                    f"INSERT INTO {table} ({columns}) OVERRIDING SYSTEM VALUE SELECT {columns}"
                    f" FROM jsonb_populate_record(null::{table}, $1)",
                    row,
                )
        finally:
            await tx.rollback()
        async with conn.transaction():
            assert (
                await conn.execute(
                    f"UPDATE {table} SET tenant_id = tenant_id WHERE tenant_id = $1", B
                )
                == "UPDATE 0"
            )
            assert await conn.execute(f"DELETE FROM {table} WHERE tenant_id = $1", B) == "DELETE 0"
    tx = conn.transaction()
    await tx.start()
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await conn.execute("UPDATE scoring.leads SET tenant_id = $1", b.tenant)
    finally:
        await tx.rollback()
    assert a.tenant != b.tenant


async def _pool_switches_per_request(w: World, tables: list[str], owner_a: dict) -> None:
    """A service pool's connection is the tenant role inside a request's context, and the
    service's own role again once released and acquired outside one."""
    pool = w.runtimes["scoring"].pool
    with acting_for(A):
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT current_user") == TENANT_ROLE
            assert await conn.fetchval(f"SELECT current_setting('{TENANT_SETTING}')") == A
            assert (
                await conn.fetchval("SELECT count(*) FROM scoring.leads")
                == owner_a['"scoring"."leads"']
            )
    for _ in range(pool.get_size() + 1):  # whichever connection comes back
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT current_user") != TENANT_ROLE
            assert not await conn.fetchval(f"SELECT current_setting('{TENANT_SETTING}', true)")
            assert await conn.fetchval("SELECT count(DISTINCT tenant_id) FROM scoring.leads") == 2


async def _rpc_runs_as_tenant_role(w: World, a: TenantData) -> None:
    md = await w.key(A, "read")
    request = scoring_pb.GetScoreRequest(lead_id=a.lead)
    assert (await w.scoring.GetScore(request, metadata=md)).score.lead_id == a.lead
    async with w.admin() as owner:
        await owner.execute(f"REVOKE SELECT ON scoring.leads FROM {TENANT_ROLE}")
        try:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await w.scoring.GetScore(request, metadata=md)
            assert err.value.code() == grpc.StatusCode.INTERNAL
        finally:
            await owner.execute(f"GRANT SELECT ON scoring.leads TO {TENANT_ROLE}")

    async def works_again() -> bool:
        reply = await w.scoring.GetScore(request, metadata=md)
        return reply.score.lead_id == a.lead

    await eventually(works_again, timeout=30)


async def _work_started_by_rpcs_completes(w: World, a: TenantData) -> None:
    """A rescoring job an RPC queued is run by the worker (the service's role, every
    tenant) to the end, and a streamed export reads the caller's rows."""
    md = await w.key(A, "read")

    async def succeeded() -> bool:
        reply = await w.scoring.GetScoringJob(
            scoring_pb.GetScoringJobRequest(job_id=a.job_ids[0]), metadata=md
        )
        assert reply.job.state != scoring_pb.SCORING_JOB_STATE_FAILED, reply.job.error
        return reply.job.state == scoring_pb.SCORING_JOB_STATE_SUCCEEDED

    await eventually(succeeded, timeout=60, interval=0.2)
    window = time_range_pb2.TimeRange(
        start_time=ts(now() - timedelta(days=1)), end_time=ts(now() + timedelta(hours=1))
    )
    request = reporting_pb.ExportRequest(events=reporting_pb.ExportEventsQuery(range=window))
    replies = [r async for r in w.reporting.Export(request, metadata=md)]
    assert replies[-1].HasField("finished")
    text = b"".join(r.chunk for r in replies).decode()
    assert a.lead in text and "zvb" not in text
