"""API keys: who may call what, against the real tenant directory."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
import pytest
from harness import auth, new_key, running
from probe.contracts import probe_pb2, probe_pb2_grpc
from probe.service import SPEC

from leadflow_platform.grpc.client import health_status, open_channel
from leadflow_platform.tenancy.store import revoke_key

pytestmark = pytest.mark.integration
READ = probe_pb2.ReadRequest(note="x")


async def _code(call) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_scopes_missing_unknown_and_revoked_keys(settings):
    ingest_key = await new_key(settings.database_url, "acme", "ingest")
    read_key = await new_key(settings.database_url, "acme", "read")
    admin_key = await new_key(settings.database_url, "acme", "admin")
    async with running(SPEC, settings) as runtime:
        target = f"127.0.0.1:{runtime.server.port}"
        async with open_channel(target) as channel:
            stub = probe_pb2_grpc.ProbeServiceStub(channel)
            record = probe_pb2.RecordRequest(note="n")
            assert await _code(stub.Read(READ)) == grpc.StatusCode.UNAUTHENTICATED
            bogus = "lf_aaaaaaaaaaaa_" + "b" * 43
            assert await _code(stub.Read(READ, metadata=auth(bogus))) == (
                grpc.StatusCode.UNAUTHENTICATED
            )
            assert await _code(stub.Read(READ, metadata=auth("not-a-key"))) == (
                grpc.StatusCode.UNAUTHENTICATED
            )
            # x-api-key works as well as the bearer form
            ok = stub.Read(READ, metadata=(("x-api-key", read_key),))
            assert await _code(ok) == grpc.StatusCode.OK

            # ingest keys write and nothing else; read keys read and nothing else
            assert await _code(stub.Record(record, metadata=auth(ingest_key))) == (
                grpc.StatusCode.OK
            )
            assert await _code(stub.Read(READ, metadata=auth(ingest_key))) == (
                grpc.StatusCode.PERMISSION_DENIED
            )
            assert await _code(stub.Record(record, metadata=auth(read_key))) == (
                grpc.StatusCode.PERMISSION_DENIED
            )
            assert await _code(stub.Configure(READ, metadata=auth(read_key))) == (
                grpc.StatusCode.PERMISSION_DENIED
            )
            # admin allows everything declared; a method that declares no scope is closed
            for call in (stub.Record(record, metadata=auth(admin_key)),
                         stub.Read(READ, metadata=auth(admin_key)),
                         stub.Configure(READ, metadata=auth(admin_key))):  # fmt: skip
                assert await _code(call) == grpc.StatusCode.OK
            assert await _code(stub.Unscoped(READ, metadata=auth(admin_key))) == (
                grpc.StatusCode.PERMISSION_DENIED
            )
            # streaming responses pass through the same checks
            watched = [r async for r in stub.Watch(probe_pb2.ReadRequest(note="n"),
                                                   metadata=auth(read_key))]  # fmt: skip
            assert [r.tenant_id for r in watched] == ["acme", "acme"]
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                async for _ in stub.Watch(READ, metadata=auth(ingest_key)):
                    pass
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

            # a revoked key stops working once the verification cache expires
            conn = await asyncpg.connect(settings.database_url)
            try:
                assert await revoke_key(conn, read_key.split("_")[1])
            finally:
                await conn.close()
            await asyncio.sleep(settings.auth_cache_seconds + 0.1)
            assert await _code(stub.Read(READ, metadata=auth(read_key))) == (
                grpc.StatusCode.UNAUTHENTICATED
            )
        # health and reflection need no key
        assert await health_status(target) == "SERVING"


async def test_a_key_acts_only_for_its_own_tenant(settings):
    acme = await new_key(settings.database_url, "acme", "admin")
    globex = await new_key(settings.database_url, "globex", "admin")
    async with running(SPEC, settings) as runtime:
        async with open_channel(f"127.0.0.1:{runtime.server.port}") as channel:
            stub = probe_pb2_grpc.ProbeServiceStub(channel)
            await stub.Record(probe_pb2.RecordRequest(note="secret"), metadata=auth(acme))
            mine = [r async for r in stub.Watch(probe_pb2.ReadRequest(note="secret"),
                                                metadata=auth(acme))]  # fmt: skip
            theirs = [r async for r in stub.Watch(probe_pb2.ReadRequest(note="secret"),
                                                  metadata=auth(globex))]  # fmt: skip
    assert [r.tenant_id for r in mine] == ["acme"]
    assert theirs == []
