"""A small local trace backend: an OTLP/gRPC receiver keeping recent spans in memory, the
span trees built from them, and a page that shows them. `leadflow up --traces` runs it for
the suite; the end-to-end tests use the same receiver to check one trace across services."""

from leadflow_platform.traces.receiver import TraceReceiver
from leadflow_platform.traces.spans import SpanRecord, SpanStore, spans_from_request
from leadflow_platform.traces.tree import SpanNode, TraceView, ancestry, build_trace
from leadflow_platform.traces.viewer import TraceViewer

__all__ = [
    "SpanNode",
    "SpanRecord",
    "SpanStore",
    "TraceReceiver",
    "TraceView",
    "TraceViewer",
    "ancestry",
    "build_trace",
    "spans_from_request",
]
