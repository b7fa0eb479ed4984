"""One trace from a gRPC call, through the outbox and JetStream, into the consumer."""

from __future__ import annotations

import pytest
from harness import auth, eventually, new_key, running
from opentelemetry.trace import SpanKind
from probe.contracts import probe_pb2, probe_pb2_grpc
from probe.service import SPEC

from leadflow_platform.grpc.client import open_channel
from leadflow_platform.telemetry import tracer

pytestmark = pytest.mark.integration


async def test_trace_continues_from_the_call_into_the_consumer(settings, spans):
    key = await new_key(settings.database_url, "acme", "admin")
    async with running(SPEC, settings) as runtime:
        async with open_channel(f"127.0.0.1:{runtime.server.port}") as channel:
            stub = probe_pb2_grpc.ProbeServiceStub(channel)
            with tracer().start_as_current_span("caller") as caller:
                await stub.Record(probe_pb2.RecordRequest(note="traced"), metadata=auth(key))
            trace_id = caller.get_span_context().trace_id

            def consumer_span():
                return [
                    s
                    for s in spans.get_finished_spans()
                    if s.kind == SpanKind.CONSUMER and s.context.trace_id == trace_id
                ]

            await eventually(consumer_span, timeout=10)
    in_trace = {s.context.span_id: s for s in spans.get_finished_spans()
                if s.context.trace_id == trace_id}  # fmt: skip

    def chain(span) -> list[str]:
        names = []
        while span is not None:
            names.append(f"{span.kind.name}:{span.name}")
            span = in_trace.get(span.parent.span_id) if span.parent else None
        return names

    (consumed,) = consumer_span()
    assert chain(consumed) == [
        "CONSUMER:probe.note.recorded process",
        "PRODUCER:probe.note.recorded publish",
        "SERVER:/leadflow_test.v1.ProbeService/Record",
        "CLIENT:/leadflow_test.v1.ProbeService/Record",
        "INTERNAL:caller",
    ]
    server = next(s for s in in_trace.values() if s.kind == SpanKind.SERVER)
    assert server.attributes["leadflow.tenant_id"] == "acme"
    # the database work of the call and of the consumer belongs to the same trace
    assert any(s.kind == SpanKind.CLIENT and "INSERT" in s.name for s in in_trace.values())
