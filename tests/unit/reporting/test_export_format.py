"""Export encoding: CSV and JSON lines read back by the standard parsers, chunks on row
boundaries within the target size, decimal values, file names."""

from __future__ import annotations

import csv
import io
import json

import pytest

from leadflow.reporting.v1 import reporting_service_pb2 as pb
from leadflow_platform.errors import InvalidArgument
from leadflow_reporting.api import export_mapping as em
from leadflow_reporting.domain.export_format import (
    Chunker,
    Format,
    Json,
    decimal_text,
    encoder,
    file_name,
    header,
)

COLUMNS = ("id", "text", "n", "x", "flag", "missing", "props")
ROWS = [
    ("a", 'quote " and, comma', 3, 0.25, True, None, Json('{"k": [1, "é"]}')),
    ("b", "line\nbreak\r\nand é", -7, 1e-9, False, None, None),
]


def test_csv_reads_back_with_crlf_and_a_header():
    encode = encoder(Format.CSV, COLUMNS)
    data = header(Format.CSV, COLUMNS) + b"".join(encode(r) for r in ROWS)
    assert data.startswith(b"id,text,n,x,flag,missing,props\r\n")
    assert data.endswith(b"\r\n")
    rows = list(csv.reader(io.StringIO(data.decode(), newline="")))
    assert rows[0] == list(COLUMNS)
    assert rows[1] == ["a", 'quote " and, comma', "3", "0.25", "true", "", '{"k": [1, "é"]}']
    assert rows[2] == ["b", "line\nbreak\r\nand é", "-7", "1e-09", "false", "", ""]


def test_json_lines_read_back_with_native_values():
    encode = encoder(Format.JSON_LINES, COLUMNS)
    assert header(Format.JSON_LINES, COLUMNS) == b""
    lines = b"".join(encode(r) for r in ROWS).decode().split("\n")
    assert lines[-1] == ""
    first, second = (json.loads(line) for line in lines[:-1])
    assert list(first) == list(COLUMNS)
    assert first == {
        "id": "a",
        "text": 'quote " and, comma',
        "n": 3,
        "x": 0.25,
        "flag": True,
        "missing": None,
        "props": {"k": [1, "é"]},
    }
    assert second["text"] == "line\nbreak\r\nand é" and second["props"] is None
    assert second["x"] == 1e-9 and second["flag"] is False


def test_chunks_end_on_rows_and_stay_within_the_target():
    rows = [f"row-{i}-{'x' * (i % 37)}\n".encode() for i in range(500)]
    chunker = Chunker(100)
    chunks = [c for r in rows if (c := chunker.add(r)) is not None]
    last = chunker.flush()
    assert last is not None and chunker.flush() is None
    chunks.append(last)
    assert b"".join(chunks) == b"".join(rows)
    assert all(len(c) <= 100 and c.endswith(b"\n") for c in chunks)
    # A row longer than the target is a chunk of its own.
    chunker = Chunker(10)
    assert chunker.add(b"abc\n") is None
    assert chunker.add(b"a" * 30 + b"\n") == b"abc\n"
    assert chunker.add(b"d\n") == b"a" * 30 + b"\n"
    assert chunker.flush() == b"d\n"


@pytest.mark.parametrize(
    ("units", "nanos", "text"),
    [(12, 500_000_000, "12.5"), (0, -250_000_000, "-0.25"), (-3, 0, "-3"), (0, 1, "0.000000001")],
)
def test_decimal_text(units, nanos, text):
    assert decimal_text(units, nanos) == text


def test_file_names_name_the_range_days():
    march = 1_740_787_200_000_000  # 2025-03-01T00:00Z
    april = march + 31 * 86_400_000_000
    assert file_name("funnel", Format.CSV, march, april) == "funnel_2025-03-01_2025-03-31.csv"
    assert file_name("journey", Format.JSON_LINES) == "journey.jsonl"


def _violations(request: pb.ExportRequest) -> list[str]:
    with pytest.raises(InvalidArgument) as info:
        em.plan(request, 0)
    return [str(v) for v in info.value.violations]


def test_bad_export_requests_name_the_field():
    assert _violations(pb.ExportRequest()) == ["what: one of events or a report is required"]
    bad = pb.ExportRequest(format=9, chunk_size_bytes=100, events=pb.ExportEventsQuery())
    assert _violations(bad) == [
        "format: unknown export format",
        "chunk_size_bytes: must be in 1,024..1,048,576",
        "events.range: start_time and end_time are required",
    ]
    request = pb.ExportRequest(events=pb.ExportEventsQuery())
    request.events.range.start_time.seconds = 200
    request.events.range.end_time.seconds = 100
    request.events.events.add(event_type=999)
    request.events.brand_ids.append("")
    assert _violations(request) == [
        "events.range: start_time must be before end_time",
        "events.events[0].event_type: unknown event type",
        "events.brand_ids[0]: 1 to 100 characters",
    ]
    funnel = pb.ExportRequest(funnel=pb.RunFunnelRequest())
    assert _violations(funnel) == ["funnel.funnel: is required"]
    paths = pb.ExportRequest(paths=pb.GetPathsRequest(depth=99))
    assert "paths.depth: must be in 1..10" in _violations(paths)


def test_any_range_length_for_events_and_the_page_ignored_for_journeys():
    request = pb.ExportRequest(events=pb.ExportEventsQuery())
    request.events.range.start_time.seconds = 1
    request.events.range.end_time.seconds = 20 * 366 * 86_400  # twenty years
    plan = em.plan(request, 0)
    assert plan.format is Format.CSV and plan.chunk_bytes == em.DEFAULT_CHUNK_BYTES
    journey = pb.ExportRequest(format=pb.EXPORT_FORMAT_JSON_LINES, journey=pb.GetJourneyRequest())
    journey.journey.subject.lead_id = "lead-1"
    journey.journey.page.page_size = 100_000
    plan = em.plan(journey, 0)
    assert plan.kind == "journey" and plan.format is Format.JSON_LINES


def test_business_reports_and_alerts_are_planned_with_their_rpcs_checks():
    assert em.plan(pb.ExportRequest(lead_quality=pb.GetLeadQualityRequest()), 0).kind == (
        "lead_quality"
    )
    assert em.plan(pb.ExportRequest(alerts=pb.ListAlertsRequest()), 0).kind == "alerts"
    with pytest.raises(InvalidArgument, match="lifecycle_funnel.range"):
        em.plan(pb.ExportRequest(lifecycle_funnel=pb.GetLifecycleFunnelRequest()), 0)
