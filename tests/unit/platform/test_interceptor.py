"""The interceptor in-process (grpc.aio on port 0): readiness, auth, scopes, error mapping."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from probe.contracts import probe_pb2, probe_pb2_grpc
from probe.service import ProbeServicer

from leadflow_platform.errors import ResourceExhausted
from leadflow_platform.grpc.interceptors import api_key_from, to_status_proto
from leadflow_platform.grpc.server import GrpcServer
from leadflow_platform.tenancy.keys import Principal, Scope

KEYS = {
    "reader": Principal("acme", "r", frozenset({Scope.READ})),
    "writer": Principal("acme", "w", frozenset({Scope.INGEST})),
}


class _NoDatabase:
    @property
    def pool(self):
        raise RuntimeError("secret internal detail")


async def _authenticate(token: str) -> Principal | None:
    return KEYS.get(token)


@pytest.fixture
async def server():
    state = {"ready": True}
    srv = GrpcServer(
        host="127.0.0.1",
        port=0,
        authenticate=_authenticate,
        is_ready=lambda: state["ready"],
        max_message_bytes=1024,
    )
    srv.add_servicer(
        probe_pb2_grpc.add_ProbeServiceServicer_to_server,
        ProbeServicer(_NoDatabase()),
        "leadflow_test.v1.ProbeService",
    )
    await srv.start()
    await srv.set_serving()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}")
    yield probe_pb2_grpc.ProbeServiceStub(channel), state
    await channel.close()
    await srv.stop(0)


async def _error(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_unready_service_answers_unavailable_with_retry_info(server):
    stub, state = server
    state["ready"] = False
    error = await _error(
        stub.Configure(probe_pb2.ReadRequest(), metadata=[("x-api-key", "reader")])
    )
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    retry = error_details_pb2.RetryInfo()
    assert rpc_status.from_call(error).details[0].Unpack(retry)
    assert retry.retry_delay.seconds == 1


async def test_field_errors_become_invalid_argument_with_bad_request(server):
    stub, _ = server
    error = await _error(
        stub.Record(
            probe_pb2.RecordRequest(invalid_field="events[3].ip"),
            metadata=[("x-api-key", "writer")],
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "events[3].ip: is not acceptable"


async def test_unexpected_errors_are_internal_and_do_not_leak(server):
    stub, _ = server
    error = await _error(stub.Read(probe_pb2.ReadRequest(), metadata=[("x-api-key", "reader")]))
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (error.details() or "")


async def test_oversized_requests_are_refused_before_reading(server):
    stub, _ = server
    error = await _error(
        stub.Record(probe_pb2.RecordRequest(note="x" * 5000), metadata=[("x-api-key", "writer")])
    )
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_api_key_metadata_forms():
    assert api_key_from((("authorization", "Bearer abc"),)) == "abc"
    assert api_key_from((("authorization", "bearer  abc "),)) == "abc"
    assert api_key_from((("x-api-key", b"abc"),)) == "abc"
    assert api_key_from((("authorization", "Basic abc"),)) is None
    assert api_key_from(None) is None


def test_resource_exhausted_carries_retry_after():
    status = to_status_proto(ResourceExhausted("slow down", retry_after=2.5))
    retry = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry)
    assert (retry.retry_delay.seconds, retry.retry_delay.nanos) == (2, 500_000_000)
