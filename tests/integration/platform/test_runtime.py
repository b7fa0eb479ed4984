"""A service on the platform, end to end: gRPC call -> outbox -> relay -> JetStream -> consumer."""

from __future__ import annotations

import grpc
import pytest
from harness import auth, eventually, new_key, running
from probe.contracts import probe_pb2, probe_pb2_grpc
from probe.service import SPEC

from leadflow_platform.grpc.client import health_status, open_channel

pytestmark = pytest.mark.integration


async def test_recorded_note_is_applied_once_by_the_consumer(settings):
    key = await new_key(settings.database_url, "acme", "ingest", "read")
    async with running(SPEC, settings) as runtime:
        target = f"127.0.0.1:{runtime.server.port}"
        assert await health_status(target) == "SERVING"
        assert await health_status(target, "leadflow_test.v1.ProbeService") == "SERVING"
        async with open_channel(target) as channel:
            stub = probe_pb2_grpc.ProbeServiceStub(channel)
            reply = await stub.Record(probe_pb2.RecordRequest(note="hello"), metadata=auth(key))
            assert reply.tenant_id == "acme"

            async def applied() -> int:
                r = await stub.Read(probe_pb2.ReadRequest(note="hello"), metadata=auth(key))
                return r.applied

            assert await eventually(applied) == 1
        # The relay marks the row after JetStream acknowledges it, so the consumer
        # may apply the note a moment before the row says so.
        published = await eventually(
            lambda: runtime.pool.fetchval(
                "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL"
            )
        )
        assert published == 1


async def test_invalid_argument_names_the_field(settings):
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    key = await new_key(settings.database_url, "acme", "ingest")
    async with running(SPEC, settings) as runtime:
        async with open_channel(f"127.0.0.1:{runtime.server.port}") as channel:
            stub = probe_pb2_grpc.ProbeServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Record(
                    probe_pb2.RecordRequest(note="x", invalid_field="note"), metadata=auth(key)
                )
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "note: is not acceptable"
    status = rpc_status.from_call(error)
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert bad_request.field_violations[0].field == "note"
