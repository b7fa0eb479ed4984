"""Header names on bus messages, and W3C trace context in and out of them."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import context as otel_context
from opentelemetry.propagate import extract, inject

MSG_ID = "Nats-Msg-Id"
TENANT = "Leadflow-Tenant"
EVENT_TYPE = "Leadflow-Event-Type"
CONTENT_TYPE = "Content-Type"
PROTOBUF = "application/x-protobuf"


def trace_headers(ctx: otel_context.Context | None = None) -> dict[str, str]:
    """The current (or given) trace context as `traceparent`/`tracestate` headers."""
    carrier: dict[str, str] = {}
    inject(carrier, context=ctx)
    return carrier


def context_from(headers: Mapping[str, str] | None) -> otel_context.Context:
    return extract(dict(headers or {}))
