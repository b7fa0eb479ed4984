"""Container health check: exit 0 when the service's gRPC health service answers SERVING.

The image's HEALTHCHECK and compose run `python /app/healthcheck.py [PORT]`. The port is the
argument, else LEADFLOW_GRPC_PORT, else the conventional port of the service this container
serves (read from `leadflow serve <service>`, the container's first process). It asks the
standard `grpc.health.v1.Health/Check` for the whole server (service ""), which a leadflow
service answers NOT_SERVING until migrations, NATS and consumers are up and again from the
first moment of a shutdown. Kubernetes needs none of this: its probes speak gRPC health
themselves (see helm/leadflow).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

TIMEOUT_SECONDS = 3.0


def service_from_command(argv: Sequence[str]) -> str | None:
    """`[..., "leadflow", "serve", "scoring"]` -> "scoring"."""
    for i, arg in enumerate(argv[:-1]):
        if arg == "serve":
            return argv[i + 1]
    return None


def resolve_port(
    args: Sequence[str], environ: Mapping[str, str], first_command: Sequence[str]
) -> int:
    if args:
        return int(args[0])
    if environ.get("LEADFLOW_GRPC_PORT"):
        return int(environ["LEADFLOW_GRPC_PORT"])
    # Imported only here: the platform takes a second to import, a probe runs every few.
    from leadflow_platform.service import DEFAULT_PORTS

    service = service_from_command(first_command)
    if service not in DEFAULT_PORTS:
        raise ValueError(
            "no port: pass it as the argument or set LEADFLOW_GRPC_PORT (the container's"
            " first process is not `leadflow serve <service>`)"
        )
    return DEFAULT_PORTS[service]


def check(port: int, host: str = "127.0.0.1", timeout: float = TIMEOUT_SECONDS) -> str:
    """`SERVING`, `NOT_SERVING`, ... or the gRPC status code when the call fails."""
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError as exc:
            return str(exc.code().name)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def _first_command() -> list[str]:
    try:
        raw = Path("/proc/1/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode() for part in raw.split(b"\0") if part]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        port = resolve_port(args, os.environ, _first_command())
    except ValueError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 2
    status = check(port)
    print(f"healthcheck: port {port}: {status}")
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
