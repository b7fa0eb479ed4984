"""gRPC: the server bootstrap, the interceptor, and client helpers."""

from leadflow_platform.grpc.client import open_channel
from leadflow_platform.grpc.interceptors import current_principal, current_tenant
from leadflow_platform.grpc.server import GrpcServer

__all__ = ["GrpcServer", "current_principal", "current_tenant", "open_channel"]
