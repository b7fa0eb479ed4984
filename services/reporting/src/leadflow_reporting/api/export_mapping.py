"""Export requests checked and turned into a plan, and report answers flattened into rows.

A report is exported as a flat table: one row per leaf item of its RPC's response, the
parent's fields repeated on each row (ExportRequest). Rows are read from the response the
report's own RPC would answer, so an export and the RPC always agree. Violations name
their field from the ExportRequest down (e.g. "funnel.funnel.range: ...").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from leadflow.common.v1 import event_type_pb2, money_pb2
from leadflow.reporting.v1 import reporting_service_pb2 as pb
from leadflow_platform.errors import FieldViolation, InvalidArgument, ServiceError
from leadflow_reporting.api import export_reports, requests, weekly_mapping
from leadflow_reporting.api.validation import ID_MAX, _selector, funnel_query, time_range
from leadflow_reporting.db.export_events import EventsQuery
from leadflow_reporting.domain.export_format import Format, Row, decimal_text
from leadflow_reporting.domain.weekly import report_week

DEFAULT_CHUNK_BYTES = 65_536
MIN_CHUNK_BYTES = 1_024
MAX_CHUNK_BYTES = 1_048_576
FORMATS = {
    pb.EXPORT_FORMAT_UNSPECIFIED: Format.CSV,
    pb.EXPORT_FORMAT_CSV: Format.CSV,
    pb.EXPORT_FORMAT_JSON_LINES: Format.JSON_LINES,
}
# Reports the service answers; the other `what` cases are reports of later versions.
BUILT = ("events", "real_time", "funnel", "paths", "journey", "retention", "weekly_report")
# EVENT_TYPE_PAGE_VIEW -> "page_view" (custom events: "custom").
TYPE_NAMES: dict[int, str] = {
    value: name.removeprefix("EVENT_TYPE_").lower()
    for name, value in event_type_pb2.EventType.items()
}


class NotExportable(ServiceError):
    code = grpc.StatusCode.UNIMPLEMENTED

    def __init__(self, kind: str) -> None:
        super().__init__(f"export of {kind} is not available in this version of reporting")


@dataclass(frozen=True)
class ExportPlan:
    kind: str  # the `what` case of the request
    format: Format
    chunk_bytes: int
    request: Any  # the report's request message (for reports)
    query: Any  # the checked domain query
    start_us: int | None = None  # the range, for the file name
    end_us: int | None = None


def _prefixed(exc: InvalidArgument, prefix: str) -> list[FieldViolation]:
    return [FieldViolation(f"{prefix}.{v.field}", v.reason) for v in exc.violations]


def _range(value: Any, field: str, bad: list[FieldViolation]) -> tuple[int, int]:
    """A required range of any length: of time_range's answers, only the 366-day cap of
    reports is dropped (the one it can give for a range that starts before it ends)."""
    found: list[FieldViolation] = []
    start, end = time_range(value, field, found, required=True)
    if start >= end:
        bad += found
    return start, end


def events_query(q: pb.ExportEventsQuery, bad: list[FieldViolation]) -> EventsQuery:
    start_us, end_us = _range(q.range, "events.range", bad)
    selectors = tuple(
        _selector(s, True, f"events.events[{i}]", bad) for i, s in enumerate(q.events)
    )
    brand_ids = requests.brands(list(q.brand_ids), "events.brand_ids", bad)
    for name in ("lead_id", "anonymous_id"):
        if len(getattr(q.subject, name)) > ID_MAX:
            bad.append(FieldViolation(f"events.subject.{name}", f"at most {ID_MAX} characters"))
    if q.HasField("subject") and not (q.subject.lead_id or q.subject.anonymous_id):
        bad.append(FieldViolation("events.subject", "a lead_id or anonymous_id is required"))
    return EventsQuery(
        start_us=start_us,
        end_us=end_us,
        selectors=selectors,
        brand_ids=brand_ids,
        lead_id=q.subject.lead_id,
        anonymous_id=q.subject.anonymous_id,
        omit_properties=q.omit_properties,
        include_machine=q.include_machine_events,
    )


def _us(ts: timestamp_pb2.Timestamp) -> int:
    return ts.seconds * 1_000_000 + ts.nanos // 1000


def plan(request: pb.ExportRequest, now_us: int) -> ExportPlan:
    """The export a request asks for, or InvalidArgument naming every bad field."""
    bad: list[FieldViolation] = []
    fmt = FORMATS.get(request.format)
    if fmt is None:
        bad.append(FieldViolation("format", "unknown export format"))
    chunk = request.chunk_size_bytes or DEFAULT_CHUNK_BYTES
    if not MIN_CHUNK_BYTES <= chunk <= MAX_CHUNK_BYTES:
        bad.append(
            FieldViolation(
                "chunk_size_bytes", f"must be in {MIN_CHUNK_BYTES:,}..{MAX_CHUNK_BYTES:,}"
            )
        )
    kind = request.WhichOneof("what")
    if kind is None:
        bad.append(FieldViolation("what", "one of events or a report is required"))
        raise InvalidArgument(*bad)
    if kind not in BUILT and kind not in export_reports.KINDS:
        raise NotExportable(kind)
    message = getattr(request, kind)
    query: Any = None
    start_us: int | None = None
    end_us: int | None = None
    try:
        if kind == "events":
            query = events_query(message, bad)
            start_us, end_us = query.start_us, query.end_us
        elif kind == "real_time":
            query = requests.real_time_query(message, now_us)
            start_us, end_us = query.start_us, query.end_us
        elif kind == "funnel":
            if not message.HasField("funnel"):
                raise InvalidArgument.field("funnel", "is required")
            query = funnel_query(message.funnel)
            start_us, end_us = query.start_us, query.end_us
        elif kind == "paths":
            query = requests.paths_query(message)
            start_us, end_us = query.start_us, query.end_us
        elif kind == "retention":
            query = requests.retention_query(message)
            start_us, end_us = query.start_us, query.end_us
        elif kind == "journey":
            # The whole timeline is streamed: the page is ignored.
            unpaged = pb.GetJourneyRequest()
            unpaged.CopyFrom(message)
            unpaged.ClearField("page")
            query = requests.journey_query(unpaged)
            start_us, end_us = query.start_us, query.end_us
        elif kind in export_reports.KINDS:
            query, start_us, end_us = export_reports.plan(kind, message)
        elif kind == "weekly_report":
            query = weekly_mapping.weekly_query(message, now_us)
            week = report_week(query.week_start_us, now_us, query.time_zone)
            start_us, end_us = week.start_us, week.end_us
    except InvalidArgument as exc:
        bad += _prefixed(exc, kind)
    if bad:
        raise InvalidArgument(*bad)
    assert fmt is not None
    return ExportPlan(kind, fmt, chunk, message, query, start_us, end_us)


# ---------------------------------------------------------------------------------------
# Report answers as rows
# ---------------------------------------------------------------------------------------


def _seconds(d: duration_pb2.Duration, present: bool = True) -> float | None:
    return d.seconds + d.nanos / 1e9 if present else None


def _time(ts: timestamp_pb2.Timestamp) -> str:
    return ts.ToDatetime().strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _money(values: Any) -> str:
    """Amounts per currency in one cell: "12.5 EUR; 3 USD"."""
    return "; ".join(
        f"{decimal_text(m.units, m.nanos)} {m.currency_code}"
        for m in sorted(values, key=lambda m: m.currency_code)
        if isinstance(m, money_pb2.Money)
    )


REAL_TIME_COLUMNS = (
    "event_type",
    "custom_event_name",
    "series_total",
    "bucket_start",
    "bucket_seconds",
    "count",
)


def real_time_rows(r: pb.GetRealTimeResponse) -> Iterator[Row]:
    for s in r.series:
        for p in s.points:
            yield (
                TYPE_NAMES.get(s.event_type, ""),
                s.custom_event_name,
                s.total,
                _time(p.bucket_start),
                r.bucket.seconds,
                p.count,
            )


FUNNEL_COLUMNS = (
    "series",
    "breakdown_value",
    "other",
    "step_index",
    "label",
    "count",
    "conversion_from_first",
    "conversion_from_previous",
    "dropped_from_previous",
    "median_seconds_from_previous",
    "average_seconds_from_previous",
    "median_seconds_to_convert",
    "excluded_subjects",
)


def funnel_rows(r: pb.RunFunnelResponse) -> Iterator[Row]:
    series = [("overall", r.overall)] + [("breakdown", s) for s in r.breakdown_series]
    for name, s in series:
        to_convert = _seconds(s.median_time_to_convert, s.HasField("median_time_to_convert"))
        for step in s.steps:
            yield (
                name,
                s.breakdown_value,
                s.other,
                step.step_index,
                step.label,
                step.count,
                step.conversion_from_first,
                step.conversion_from_previous,
                step.dropped_from_previous,
                _seconds(
                    step.median_time_from_previous, step.HasField("median_time_from_previous")
                ),
                _seconds(
                    step.average_time_from_previous, step.HasField("average_time_from_previous")
                ),
                to_convert,
                r.excluded_subjects,
            )


PATHS_COLUMNS = (
    "source_id",
    "source_step",
    "source_name",
    "target_id",
    "target_step",
    "target_name",
    "count",
    "median_seconds_between",
    "path_count",
)


def paths_rows(r: pb.GetPathsResponse) -> Iterator[Row]:
    nodes = {n.id: n for n in r.nodes}
    for e in r.edges:
        source, target = nodes.get(e.source_id), nodes.get(e.target_id)
        yield (
            e.source_id,
            source.step if source else None,
            source.name if source else "",
            e.target_id,
            target.step if target else None,
            target.name if target else "",
            e.count,
            _seconds(e.median_time_between),
            r.path_count,
        )


RETENTION_COLUMNS = (
    "cohort_start",
    "cohort_size",
    "converted_subjects",
    "conversion_rate",
    "revenue",
    "period",
    "active",
    "share",
    "complete",
)


def retention_rows(r: pb.GetRetentionResponse) -> Iterator[Row]:
    for c in r.cohorts:
        revenue = _money(c.revenue)
        for cell in c.cells:
            yield (
                _time(c.cohort_start),
                c.size,
                c.converted_subjects,
                c.conversion_rate,
                revenue,
                cell.period,
                cell.active,
                cell.share,
                cell.complete,
            )
