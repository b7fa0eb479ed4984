"""The grpc.aio server every service runs: its servicers, health, reflection, interceptors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from leadflow_platform import telemetry
from leadflow_platform.grpc.decoding import DecodeRequests
from leadflow_platform.grpc.interceptors import Authenticate, ServiceInterceptor
from leadflow_platform.logging import get_logger
from leadflow_platform.tls import ServerTls

log = get_logger(__name__)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class GrpcServer:
    """Health answers from the moment the port is bound, NOT_SERVING until `set_serving`."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        authenticate: Authenticate,
        is_ready: Callable[[], bool],
        max_message_bytes: int,
        reuse_port: bool = False,
        tls: ServerTls | None = None,
    ) -> None:
        self._address = f"{host}:{port}"
        self._tls = tls
        self.health = health.aio.HealthServicer()
        self._service_names: list[str] = []
        self._server = grpc.aio.server(
            interceptors=[
                telemetry.grpc_server_interceptor(),
                ServiceInterceptor(authenticate=authenticate, is_ready=is_ready),
                # Innermost: undecodable requests reach the checks above, then are refused.
                DecodeRequests(),
            ],
            options=[
                # Larger requests are refused from their length prefix, before being read.
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                # Only workers of one `leadflow serve` share a port; otherwise a second
                # process on the same port is an error, not a silent split of the traffic.
                ("grpc.so_reuseport", 1 if reuse_port else 0),
            ],
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        self.port = 0

    def add_servicer(
        self, register: Callable[[Any, grpc.aio.Server], None], servicer: Any, service_name: str
    ) -> None:
        """`register` is the generated `add_<Service>Servicer_to_server` function."""
        register(servicer, self._server)
        self._service_names.append(service_name)

    async def start(self) -> int:
        reflection.enable_server_reflection(
            [*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server
        )
        for name in ["", *self._service_names]:
            await self.health.set(name, NOT_SERVING)
        # With TLS the port speaks nothing else: a plaintext client fails its handshake.
        if self._tls is None:
            self.port = self._server.add_insecure_port(self._address)
        else:
            self.port = self._server.add_secure_port(self._address, self._tls.credentials())
        if self.port == 0:
            raise OSError(f"could not bind gRPC server to {self._address}")
        await self._server.start()
        log.info(
            "grpc_listening",
            address=self._address,
            port=self.port,
            tls="off" if self._tls is None else "mutual" if self._tls.client_ca else "server",
        )
        return self.port

    async def set_serving(self) -> None:
        for name in ["", *self._service_names]:
            await self.health.set(name, SERVING)

    async def enter_graceful_shutdown(self) -> None:
        await self.health.enter_graceful_shutdown()

    async def stop(self, grace: float) -> None:
        """Refuse new calls; let in-flight ones finish within `grace` seconds."""
        await self._server.stop(grace)

    async def wait_for_termination(self) -> None:
        await self._server.wait_for_termination()
