from __future__ import annotations

import io
import json
import logging

import structlog

from leadflow_platform.logging import configure_logging, get_logger
from leadflow_platform.telemetry import tracer


def test_json_lines_carry_trace_ids_context_and_stdlib_records():
    out = io.StringIO()
    configure_logging(level="info", fmt="json", service="ingest", stream=out)
    try:
        with (
            tracer().start_as_current_span("work") as span,
            structlog.contextvars.bound_contextvars(tenant_id="acme"),
        ):
            get_logger("test").info("lead_routed", lead_id="l1", brand="modumind")
            logging.getLogger("some.library").warning("plain stdlib message")
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
    finally:
        configure_logging(level="info", fmt="json")
    ours, theirs = lines
    context = span.get_span_context()
    assert ours["event"] == "lead_routed"
    assert ours["lead_id"] == "l1" and ours["brand"] == "modumind"
    assert ours["tenant_id"] == "acme" and ours["service"] == "ingest"
    assert ours["trace_id"] == format(context.trace_id, "032x")
    assert ours["span_id"] == format(context.span_id, "016x")
    assert ours["level"] == "info" and "timestamp" in ours
    assert theirs["event"] == "plain stdlib message"
    assert theirs["trace_id"] == ours["trace_id"]
    assert theirs["level"] == "warning"
