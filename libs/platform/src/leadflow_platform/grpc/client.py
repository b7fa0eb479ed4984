"""Channels leadflow opens to its own services (CLI, tests, benchmarks)."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from leadflow_platform import telemetry


def open_channel(
    target: str, *, max_message_bytes: int = 64 * 1024 * 1024, own_connection: bool = False
) -> grpc.aio.Channel:
    """An insecure channel with trace propagation (W3C headers) on every call.

    gRPC shares connections between channels to the same target; `own_connection` gives this
    channel a connection of its own, so that several channels spread over the worker
    processes of a service (which share its port and are balanced per connection)."""
    options: list[tuple[str, int]] = [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]
    if own_connection:
        options.append(("grpc.use_local_subchannel_pool", 1))
    return grpc.aio.insecure_channel(
        target, interceptors=telemetry.grpc_client_interceptors(), options=options
    )


def api_key_metadata(api_key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {api_key}"),)


async def health_status(target: str, service: str = "", *, timeout: float = 1.0) -> str:
    """`SERVING`, `NOT_SERVING`, ... or `UNREACHABLE` when nothing answers."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.aio.AioRpcError:
            return "UNREACHABLE"
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
