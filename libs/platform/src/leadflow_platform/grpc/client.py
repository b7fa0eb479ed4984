"""Channels leadflow opens to its own services (CLI, tests, benchmarks).

Every channel goes through `open_channel`, so the client TLS settings (LEADFLOW_TLS_CA_FILE,
LEADFLOW_TLS_CLIENT_CERT_FILE/KEY_FILE) apply to all of them.
"""

from __future__ import annotations

from typing import Any, Literal

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from leadflow_platform import telemetry
from leadflow_platform.tls import ClientTls, client_tls_from_env

# `tls=None`: as the environment says (plaintext when it names no TLS file); `PLAINTEXT`:
# plaintext whatever the environment says; a ClientTls: that.
PLAINTEXT: Literal[False] = False
TlsChoice = ClientTls | Literal[False] | None


def open_channel(
    target: str,
    *,
    max_message_bytes: int = 64 * 1024 * 1024,
    own_connection: bool = False,
    tls: TlsChoice = None,
) -> grpc.aio.Channel:
    """A channel with trace propagation (W3C headers) on every call, over TLS when `tls` or
    the environment asks for it.

    gRPC shares connections between channels to the same target; `own_connection` gives this
    channel a connection of its own, so that several channels spread over the worker
    processes of a service (which share its port and are balanced per connection)."""
    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]
    if own_connection:
        options.append(("grpc.use_local_subchannel_pool", 1))
    return _channel(target, tls, options, telemetry.grpc_client_interceptors())


def _channel(
    target: str, tls: TlsChoice, options: list[tuple[str, Any]], interceptors: Any = None
) -> grpc.aio.Channel:
    chosen = client_tls_from_env() if tls is None else tls
    if not chosen:
        return grpc.aio.insecure_channel(target, interceptors=interceptors, options=options)
    return grpc.aio.secure_channel(
        target,
        chosen.credentials(),
        interceptors=interceptors,
        options=[*options, *chosen.options()],
    )


def api_key_metadata(api_key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {api_key}"),)


async def health_status(
    target: str, service: str = "", *, timeout: float = 1.0, tls: TlsChoice = None
) -> str:
    """`SERVING`, `NOT_SERVING`, ... or `UNREACHABLE` when nothing answers (which includes a
    TLS handshake that fails: plaintext to a TLS port, an untrusted certificate)."""
    async with _channel(target, tls, []) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.aio.AioRpcError:
            return "UNREACHABLE"
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
