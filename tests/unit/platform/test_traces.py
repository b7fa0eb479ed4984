"""The trace viewer's pure parts: OTLP spans as records, the bounded store, span trees and
the page; and the sampler that keeps lone database polls out of the traces."""

from __future__ import annotations

import re

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased

from leadflow_platform.telemetry import QueriesInTraces
from leadflow_platform.traces import (
    SpanRecord,
    SpanStore,
    ancestry,
    build_trace,
    spans_from_request,
)
from leadflow_platform.traces.page import render_page


def _record(
    span_id: str,
    parent: str = "",
    *,
    trace_id: str = "a" * 32,
    start: int = 0,
    end: int = 10,
    name: str = "",
    service: str = "leadflow-x",
    **fields,
) -> SpanRecord:
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=name or f"span {span_id}",
        kind="INTERNAL",
        service=service,
        start_ns=start,
        end_ns=end,
        **fields,
    )


def test_otlp_spans_become_records_with_their_service_ids_kind_status_and_links():
    exported = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "leadflow-routing"}))
    provider.add_span_processor(SimpleSpanProcessor(exported))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("other") as other:
        pass
    with tracer.start_as_current_span("decide", kind=trace.SpanKind.CONSUMER) as parent:
        with tracer.start_as_current_span(
            "webhook delivery",
            kind=trace.SpanKind.CLIENT,
            links=[trace.Link(other.get_span_context())],
            attributes={"leadflow.delivery.attempt": 2, "tags": ["a", "b"], "ok": False},
        ) as child:
            child.set_status(trace.Status(trace.StatusCode.ERROR, "webhook: HTTP 500"))
    records = {r.name: r for r in spans_from_request(encode_spans(exported.get_finished_spans()))}

    delivery = records["webhook delivery"]
    assert delivery.trace_id == f"{parent.get_span_context().trace_id:032x}"
    assert delivery.span_id == f"{child.get_span_context().span_id:016x}"
    assert delivery.parent_span_id == f"{parent.get_span_context().span_id:016x}"
    assert (delivery.kind, delivery.service) == ("CLIENT", "leadflow-routing")
    assert (delivery.status, delivery.status_message) == ("ERROR", "webhook: HTTP 500")
    assert delivery.attributes == {"leadflow.delivery.attempt": 2, "tags": ["a", "b"], "ok": False}
    other_context = other.get_span_context()
    assert delivery.links == ((f"{other_context.trace_id:032x}", f"{other_context.span_id:016x}"),)
    assert delivery.duration_ns == delivery.end_ns - delivery.start_ns > 0
    assert records["decide"].parent_span_id == ""
    assert records["decide"].kind == "CONSUMER"


def test_the_store_keeps_the_recently_active_traces_each_span_once_and_bounded():
    store = SpanStore(max_traces=2, max_spans=3)
    store.add([_record("01", trace_id="1" * 32, start=100), _record("01", trace_id="1" * 32)])
    store.add([_record("02", trace_id="2" * 32, start=200)])
    store.add([_record("03", "01", trace_id="1" * 32, start=150)])  # trace 1 active again
    store.add([_record("04", trace_id="3" * 32, start=300)])  # trace 2 is evicted
    assert store.received == 5
    assert [[s.span_id for s in spans] for spans in store.traces()] == [["04"], ["01", "03"]]
    assert store.trace("2" * 32) == []
    assert store.traces(limit=1)[0][0].span_id == "04"
    store.add([_record(f"1{i}", trace_id="3" * 32) for i in range(5)])
    assert len(store.trace("3" * 32)) == 3  # at most max_spans per trace


def test_a_trace_becomes_a_tree_in_start_order_with_orphans_after_the_roots():
    spans = [
        _record("c2", "b1", start=30, end=40),
        _record("b1", "a0", start=10, end=50),
        _record("a0", start=0, end=100),
        _record("b2", "a0", start=20, end=25),
        _record("c1", "b1", start=15, end=20),
        _record("o1", "missing", start=5, end=6),
    ]
    view = build_trace(spans)
    assert [(depth, s.span_id) for depth, s in view.walk()] == [
        (0, "a0"),
        (1, "b1"),
        (2, "c1"),
        (2, "c2"),
        (1, "b2"),
        (0, "o1"),
    ]
    assert view.title == "span a0"
    assert (view.span_count, view.start_ns, view.end_ns, view.duration_ns) == (6, 0, 100, 100)
    by_id = {s.span_id: s for s in spans}
    assert [s.span_id for s in ancestry(by_id["c2"], by_id)] == ["c2", "b1", "a0"]
    assert [s.span_id for s in ancestry(by_id["o1"], by_id)] == ["o1"]


def test_spans_whose_parents_form_a_cycle_are_each_shown_once():
    spans = [_record("x", "y", start=1), _record("y", "x", start=2), _record("r")]
    view = build_trace(spans)
    assert sorted(s.span_id for _, s in view.walk()) == ["r", "x", "y"]
    by_id = {s.span_id: s for s in spans}
    assert [s.span_id for s in ancestry(by_id["x"], by_id)] == ["x", "y"]


def test_the_page_shows_each_trace_as_an_indented_tree_and_escapes_what_it_received():
    hostile = '<script>alert("x")</script>'
    spans = [
        _record("a0", name="/leadflow.ingest.v1.IngestService/TrackBatch", end=2_000_000_000),
        _record(
            "b1",
            "a0",
            name=hostile,
            service=f"leadflow-{hostile}",
            start=500_000_000,
            end=1_000_000_000,
            status="ERROR",
            attributes={"note": hostile},
        ),
    ]
    page = render_page([build_trace(spans)], received=2, endpoint="http://127.0.0.1:4317")
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page  # names, services and attributes are all escaped
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "a" * 32 in page
    assert "2.00 s" in page and "500.0 ms" in page
    rows = re.findall(r'<tr( class="error")? title="[^"]*"><td class="name" style="'
                      r'padding-left:([\d.]+)rem">', page)  # fmt: skip
    assert rows == [("", "0.6"), (' class="error"', "1.8")]
    assert "left:25.00%;width:25.00%" in page
    assert "No spans yet" in render_page([], received=0, endpoint="http://127.0.0.1:4317")


def test_a_query_outside_any_trace_is_not_recorded_and_one_inside_is():
    exported = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(QueriesInTraces()))
    provider.add_span_processor(SimpleSpanProcessor(exported))
    tracer = provider.get_tracer("test")
    query = {"db.system": "postgresql", "db.statement": "SELECT 1"}
    with tracer.start_as_current_span("SELECT", kind=trace.SpanKind.CLIENT, attributes=query):
        pass  # a poll: a trace of its own, dropped
    with tracer.start_as_current_span(
        "ingest.event.recorded process", kind=trace.SpanKind.CONSUMER
    ):
        with tracer.start_as_current_span("SELECT", kind=trace.SpanKind.CLIENT, attributes=query):
            pass
    with tracer.start_as_current_span("webhook delivery", kind=trace.SpanKind.CLIENT):
        pass  # a client span that is no query starts a trace
    assert sorted(s.name for s in exported.get_finished_spans()) == [
        "SELECT",
        "ingest.event.recorded process",
        "webhook delivery",
    ]
