"""Spans as received over OTLP, and the bounded in-memory store that keeps the recent ones.

A span arrives as part of an `ExportTraceServiceRequest` (one per exporter batch, grouped by
resource and scope); it is kept as a `SpanRecord`: ids in hex, kind and status as names, the
resource's `service.name` on every span, attributes as plain values.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

_KINDS = {
    trace_pb2.Span.SPAN_KIND_INTERNAL: "INTERNAL",
    trace_pb2.Span.SPAN_KIND_SERVER: "SERVER",
    trace_pb2.Span.SPAN_KIND_CLIENT: "CLIENT",
    trace_pb2.Span.SPAN_KIND_PRODUCER: "PRODUCER",
    trace_pb2.Span.SPAN_KIND_CONSUMER: "CONSUMER",
}
_STATUSES = {
    trace_pb2.Status.STATUS_CODE_OK: "OK",
    trace_pb2.Status.STATUS_CODE_ERROR: "ERROR",
}


@dataclass(frozen=True, slots=True, eq=False)
class SpanRecord:
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_span_id: str  # "" for a root
    name: str
    kind: str  # INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER (UNSPECIFIED when not sent)
    service: str  # the resource's service.name
    start_ns: int
    end_ns: int
    status: str = "UNSET"  # UNSET, OK or ERROR
    status_message: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    links: tuple[tuple[str, str], ...] = ()  # (trace id, span id) of each linked span

    @property
    def duration_ns(self) -> int:
        return max(self.end_ns - self.start_ns, 0)


def spans_from_request(request: trace_service_pb2.ExportTraceServiceRequest) -> list[SpanRecord]:
    out = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        service = str(resource.get("service.name", ""))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                out.append(
                    SpanRecord(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=_KINDS.get(span.kind, "UNSPECIFIED"),
                        service=service,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        status=_STATUSES.get(span.status.code, "UNSET"),
                        status_message=span.status.message,
                        attributes=_attributes(span.attributes),
                        links=tuple((k.trace_id.hex(), k.span_id.hex()) for k in span.links),
                    )
                )
    return out


def _attributes(pairs: Iterable[common_pb2.KeyValue]) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


def _value(value: common_pb2.AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


class SpanStore:
    """The most recently active `max_traces` traces, up to `max_spans` spans each (a span
    received twice is kept once). Safe to use from the receiver's and the viewer's threads."""

    def __init__(self, *, max_traces: int = 500, max_spans: int = 5_000) -> None:
        self._max_traces = max_traces
        self._max_spans = max_spans
        self._traces: OrderedDict[str, dict[str, SpanRecord]] = OrderedDict()
        self._lock = threading.Lock()
        self.received = 0  # spans received in all

    def add(self, spans: Iterable[SpanRecord]) -> None:
        with self._lock:
            for span in spans:
                self.received += 1
                kept = self._traces.get(span.trace_id)
                if kept is None:
                    kept = self._traces[span.trace_id] = {}
                else:
                    self._traces.move_to_end(span.trace_id)
                if span.span_id in kept or len(kept) < self._max_spans:
                    kept[span.span_id] = span
            while len(self._traces) > self._max_traces:
                self._traces.popitem(last=False)

    def trace(self, trace_id: str) -> list[SpanRecord]:
        with self._lock:
            return list(self._traces.get(trace_id, {}).values())

    def traces(self, limit: int | None = None) -> list[list[SpanRecord]]:
        """The traces' spans, the trace that started last first."""
        with self._lock:
            kept = [list(spans.values()) for spans in self._traces.values()]
        kept.sort(key=lambda spans: min(s.start_ns for s in spans), reverse=True)
        return kept if limit is None else kept[:limit]

    def spans(self) -> list[SpanRecord]:
        with self._lock:
            return [s for spans in self._traces.values() for s in spans.values()]
