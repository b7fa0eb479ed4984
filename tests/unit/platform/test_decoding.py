"""Undecodable request bytes (found by tests/security/test_fuzz.py: grpc.aio answered UNKNOWN
when protobuf refused a request nested past its depth limit) are INVALID_ARGUMENT naming
"request", after the key is checked."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from probe.contracts import probe_pb2, probe_pb2_grpc

from leadflow_platform.grpc.server import GrpcServer
from leadflow_platform.tenancy.keys import Principal, Scope

READER = Principal("acme", "r", frozenset({Scope.READ}))
# Field 1 of ReadRequest says 5 bytes follow; there are 3.
TRUNCATED = b"\x0a\x05abc"


async def _authenticate(token: str) -> Principal | None:
    return READER if token == "reader" else None


class _Reads(probe_pb2_grpc.ProbeServiceServicer):
    async def Read(self, request, context):
        return probe_pb2.ReadResponse()

    async def Watch(self, request, context):
        yield probe_pb2.RecordResponse()


@pytest.fixture
async def channel():
    server = GrpcServer(
        host="127.0.0.1",
        port=0,
        authenticate=_authenticate,
        is_ready=lambda: True,
        max_message_bytes=1024 * 1024,
    )
    server.add_servicer(
        probe_pb2_grpc.add_ProbeServiceServicer_to_server, _Reads(), "leadflow_test.v1.ProbeService"
    )
    await server.start()
    await server.set_serving()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield channel
    await server.stop(0)


def _raw(channel: grpc.aio.Channel, method: str, *, stream: bool = False):
    path = f"/leadflow_test.v1.ProbeService/{method}"
    if stream:
        return channel.unary_stream(path, None, probe_pb2.RecordResponse.FromString)
    return channel.unary_unary(path, None, probe_pb2.ReadResponse.FromString)


def _violations(error: grpc.aio.AioRpcError) -> list[str]:
    bad = error_details_pb2.BadRequest()
    assert rpc_status.from_call(error).details[0].Unpack(bad)
    return [v.field for v in bad.field_violations]


async def test_undecodable_unary_request_is_invalid_argument_naming_request(channel):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _raw(channel, "Read")(TRUNCATED, metadata=[("x-api-key", "reader")])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _violations(caught.value) == ["request"]


async def test_undecodable_server_streaming_request_is_invalid_argument(channel):
    call = _raw(channel, "Watch", stream=True)(TRUNCATED, metadata=[("x-api-key", "reader")])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_undecodable_request_without_a_key_is_unauthenticated(channel):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _raw(channel, "Read")(TRUNCATED)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_decodable_request_still_reaches_the_servicer(channel):
    reply = await _raw(channel, "Read")(
        probe_pb2.ReadRequest().SerializeToString(), metadata=[("x-api-key", "reader")]
    )
    assert reply == probe_pb2.ReadResponse()
