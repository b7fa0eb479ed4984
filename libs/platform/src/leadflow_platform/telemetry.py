"""OpenTelemetry tracing, set up explicitly (no auto-instrumentation agent).

A process calls `configure_tracing` once from its `__main__`. Spans are exported over OTLP/gRPC
when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; the
exporter reads the rest of the standard `OTEL_*` variables itself. asyncpg is instrumented
here; the gRPC server and client interceptors come from `grpc_tracing_interceptors`.
Trace context crosses NATS in W3C `traceparent` headers (see leadflow_platform.nats).

A database query outside any request, message or job is not recorded (unless
`OTEL_TRACES_SAMPLER` chooses another sampler): the outbox relays and the workers poll every
second in every service, and each poll would be a trace of its own, burying the traces of
the suite's work in any trace viewer.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.util.types import Attributes

_provider: TracerProvider | None = None
TRACER_NAME = "leadflow"


def configure_tracing(
    service: str, *, enabled: bool = True, processors: Iterable[SpanProcessor] = ()
) -> TracerProvider:
    """Install the process's tracer provider. Later calls return the first provider and add
    the given processors to it (tests attach an in-memory exporter this way)."""
    global _provider
    if _provider is None:
        resource = Resource.create(
            {"service.name": f"leadflow-{service}", "service.namespace": "leadflow"}
        )
        sampler = None if os.environ.get("OTEL_TRACES_SAMPLER") else ParentBased(QueriesInTraces())
        _provider = TracerProvider(resource=resource, sampler=sampler)
        if enabled and _otlp_endpoint_configured():
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(_provider)
        if enabled:
            AsyncPGInstrumentor().instrument(tracer_provider=_provider)
    for processor in processors:
        _provider.add_span_processor(processor)
    return _provider


class QueriesInTraces(Sampler):
    """The root sampler: every trace is recorded except one that would start with a database
    query (a poll outside any request, message or job). Queries inside a trace are recorded
    with it (ParentBased)."""

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: trace.SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[trace.Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        if kind is trace.SpanKind.CLIENT and attributes and _DB_SYSTEM.intersection(attributes):
            return SamplingResult(Decision.DROP)
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "QueriesInTraces"


_DB_SYSTEM = frozenset({"db.system", "db.system.name"})


def _otlp_endpoint_configured() -> bool:
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


_tracer: tuple[trace.TracerProvider, trace.Tracer] | None = None


def tracer() -> trace.Tracer:
    """leadflow's tracer (made once per provider: making one costs tens of µs)."""
    global _tracer
    provider = trace.get_tracer_provider()
    if _tracer is None or _tracer[0] is not provider:
        _tracer = (provider, provider.get_tracer(TRACER_NAME))
    return _tracer[1]


def shutdown_tracing() -> None:
    """Flush what is buffered and stop exporting. Last step of a shutdown."""
    if _provider is not None:
        _provider.force_flush(timeout_millis=5_000)
        _provider.shutdown()


def grpc_server_interceptor():
    """The OpenTelemetry gRPC aio server interceptor, bound to our provider. Health checks
    are not traced: probes ask every few seconds, each a trace of its own."""
    from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

    return aio_server_interceptor(
        tracer_provider=_provider, filter_=filters.negate(filters.health_check())
    )


def grpc_client_interceptors() -> list:
    """Interceptors for grpc.aio channels leadflow opens (CLI, tests, service-to-service)."""
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors(tracer_provider=_provider))
