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
TRACEPARENT = "traceparent"


def trace_headers(ctx: otel_context.Context | None = None) -> dict[str, str]:
    """The current (or given) trace context as `traceparent`/`tracestate` headers."""
    carrier: dict[str, str] = {}
    inject(carrier, context=ctx)
    return carrier


def context_from(headers: Mapping[str, str] | None) -> otel_context.Context:
    return extract(dict(headers or {}))


def traceparent(ctx: otel_context.Context | None = None) -> str:
    """The W3C `traceparent` of the current (or given) context; "" outside any trace."""
    return trace_headers(ctx).get(TRACEPARENT, "")


def context_from_traceparent(value: str | None) -> otel_context.Context | None:
    """The context a stored `traceparent` names (None for none), to parent later work."""
    return extract({TRACEPARENT: value}) if value else None
