"""An OTLP/gRPC trace receiver (the collector's TraceService), keeping what it receives in a
SpanStore. It runs on a thread pool, so it serves the same from `leadflow up` (no event loop)
and from async tests."""

from __future__ import annotations

from concurrent import futures
from types import TracebackType

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from leadflow_platform.traces.spans import SpanStore, spans_from_request

_MAX_MESSAGE_BYTES = 32 * 1024**2  # exporters send up to 512 spans a request


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, store: SpanStore) -> None:
        self._store = store

    def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.ServicerContext,
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self._store.add(spans_from_request(request))
        return trace_service_pb2.ExportTraceServiceResponse()


class TraceReceiver:
    """Receives spans on `host:port` (0: any free port) until stopped; `endpoint` is what
    OTEL_EXPORTER_OTLP_ENDPOINT must name."""

    def __init__(
        self, store: SpanStore | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.store = store if store is not None else SpanStore()
        self._host = host
        self._port = port
        self._server: grpc.Server | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def endpoint(self) -> str:
        host = "127.0.0.1" if self._host in ("0.0.0.0", "") else self._host
        return f"http://{host}:{self._port}"

    def start(self) -> TraceReceiver:
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="otlp-receiver"),
            options=[("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES)],
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self.store), server)
        self._port = server.add_insecure_port(f"{self._host}:{self._port}")
        server.start()
        self._server = server
        return self

    def stop(self, grace: float = 1.0) -> None:
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None

    def __enter__(self) -> TraceReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
