"""Export over gRPC: events sent through ingest come back from the stream, CSV and JSON lines
parsed by the standard parsers, every column compared with what was sent; range edges, an
empty range, filters, erasure, reports equal to their RPCs, and bad requests."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from ingest_support import event, now
from reporting_support import suite

from leadflow.common.v1 import event_type_pb2, time_range_pb2
from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow.reporting.v1 import reporting_service_pb2 as pb
from leadflow_reporting.db.export_events import COLUMNS

pytestmark = pytest.mark.integration

CSV_TYPE, JSONL = pb.EXPORT_FORMAT_CSV, pb.EXPORT_FORMAT_JSON_LINES


def span(start: datetime, end: datetime) -> time_range_pb2.TimeRange:
    r = time_range_pb2.TimeRange()
    r.start_time.FromDatetime(start)
    r.end_time.FromDatetime(end)
    return r


async def export(s, request: pb.ExportRequest) -> tuple[bytes, pb.ExportFinished, list[bytes]]:
    """The whole stream, checked: sequences without gaps, chunks within the target size and
    on row boundaries, exactly one `finished` at the end with matching totals."""
    chunks: list[bytes] = []
    finished = None
    async for m in s.reporting.Export(request, metadata=s.metadata):
        assert finished is None, "a message after finished"
        assert m.sequence == len(chunks)
        if m.WhichOneof("payload") == "chunk":
            chunks.append(m.chunk)
        else:
            finished = m.finished
    assert finished is not None, "the stream ended without finished"
    target = request.chunk_size_bytes or 65_536
    newline = b"\n"
    for c in chunks:
        assert c.endswith(newline)
        assert len(c) <= target or c.count(newline) == 1 or b'"' in c  # one (multi-line) row
    data = b"".join(chunks)
    assert finished.byte_count == len(data) and finished.chunk_count == len(chunks)
    return data, finished, chunks


def parse_csv(data: bytes) -> list[dict[str, str]]:
    assert data.endswith(b"\r\n")
    return list(csv.DictReader(io.StringIO(data.decode(), newline="")))


def parse_jsonl(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines()]


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# Noon five days ago: inside retention, the range within one day.
T0 = (datetime.now(UTC) - timedelta(days=5)).replace(hour=12, minute=0, second=0, microsecond=0)


def sent_events(t0: datetime) -> list:
    return [
        event(
            "ev-1",
            type="page_view",
            lead_id="lead-1",
            brand_id="modumind",
            occurred_at=t0,
            session_id="s-1",
            page_url="https://modumind.example/pricing?plan=pro#top",
            referrer="https://search.example/?q=crm",
            marketing={
                "channel": "paid_search",
                "source": "google",
                "medium": "cpc",
                "campaign": 'spring, "launch"',
                "content": "ad-1",
                "term": "crm tool",
            },
            properties={"plan": "pro", "nested": {"n": 2, "ok": True}, "text": "line\nbreak é"},
        ),
        # Same time as ev-1: ordered by event id.
        event(
            "ev-0",
            type="click",
            anonymous_id="anon-9",
            brand_id="stacksense",
            occurred_at=t0,
            session_id="s-0",
        ),
        event(
            "ev-2",
            type="purchase",
            lead_id="lead-1",
            occurred_at=t0 + timedelta(minutes=5),
            session_id="s-1",
            value=(49, 990_000_000, "EUR"),
        ),
        event(
            "ev-3",
            type="custom",
            custom_name="trial_extended",
            lead_id="lead-2",
            occurred_at=t0 + timedelta(hours=1),
            session_id="s-3",
        ),
        # A bot's page view: machine, left out unless asked for.
        event(
            "ev-bot",
            type="page_view",
            anonymous_id="anon-bot",
            occurred_at=t0 + timedelta(minutes=30),
            user_agent="Mozilla/5.0 (compatible; Googlebot/2.1)",
        ),
        # Exactly at the range's end: excluded. Just before its start: excluded.
        event("ev-end", type="page_view", lead_id="lead-2", occurred_at=t0 + timedelta(hours=2)),
        event(
            "ev-before",
            type="page_view",
            lead_id="lead-2",
            occurred_at=t0 - timedelta(microseconds=1),
        ),
    ]


EXPECTED = {
    "ev-0": {
        "event_type": "click",
        "lead_id": "",
        "anonymous_id": "anon-9",
        "brand_id": "stacksense",
        "session_id": "s-0",
        "occurred_at": iso(T0),
    },
    "ev-1": {
        "event_type": "page_view",
        "lead_id": "lead-1",
        "brand_id": "modumind",
        "session_id": "s-1",
        "page_url": "https://modumind.example/pricing?plan=pro#top",
        "referrer": "https://search.example/?q=crm",
        "channel": "paid_search",
        "source": "google",
        "medium": "cpc",
        "campaign": 'spring, "launch"',
        "content": "ad-1",
        "term": "crm tool",
        "occurred_at": iso(T0),
    },
    "ev-2": {
        "event_type": "purchase",
        "lead_id": "lead-1",
        "conversion": True,
        "value": "49.99",
        "currency_code": "EUR",
        "session_id": "s-1",
        "brand_id": "modumind",
        "occurred_at": iso(T0 + timedelta(minutes=5)),
    },
    "ev-3": {
        "event_type": "custom",
        "custom_event_name": "trial_extended",
        "lead_id": "lead-2",
        "session_id": "s-3",
        "brand_id": "modumind",
        "occurred_at": iso(T0 + timedelta(hours=1)),
    },
}
PROPERTIES = {"ev-1": {"plan": "pro", "nested": {"n": 2, "ok": True}, "text": "line\nbreak é"}}


def events_request(start, end, fmt=CSV_TYPE, chunk_size_bytes=0, **query) -> pb.ExportRequest:
    return pb.ExportRequest(
        format=fmt,
        events=pb.ExportEventsQuery(range=span(start, end), **query),
        chunk_size_bytes=chunk_size_bytes,
    )


async def test_events_come_back_as_sent_in_csv_and_json_lines(settings):
    t0 = T0
    async with suite(settings) as s:
        sent_from = now()
        await s.track(sent_events(t0))
        await s.applied()
        end = t0 + timedelta(hours=2)

        data, finished, _ = await export(s, events_request(t0, end))
        rows = parse_csv(data)
        assert list(rows[0]) == list(COLUMNS)
        assert [r["event_id"] for r in rows] == ["ev-0", "ev-1", "ev-2", "ev-3"]
        assert finished.row_count == 4
        assert finished.content_type == "text/csv; charset=utf-8"
        assert finished.suggested_file_name == f"events_{T0:%Y-%m-%d}_{T0:%Y-%m-%d}.csv"

        lines, jfinished, _ = await export(s, events_request(t0, end, JSONL))
        objects = parse_jsonl(lines)
        assert [o["event_id"] for o in objects] == ["ev-0", "ev-1", "ev-2", "ev-3"]
        assert jfinished.content_type == "application/x-ndjson"
        assert jfinished.suggested_file_name.endswith(".jsonl")

        for row, obj in zip(rows, objects, strict=True):
            want = EXPECTED[row["event_id"]]
            assert list(obj) == list(COLUMNS)
            for column in COLUMNS:
                if column in ("received_at", "properties", "event_id"):
                    continue
                expected = want.get(column, False if column in ("conversion", "machine") else "")
                got_json = obj[column]
                if column == "value" and not expected:
                    assert got_json is None and row[column] == ""
                    continue
                assert got_json == expected, (row["event_id"], column)
                text = ("true" if expected else "false") if isinstance(expected, bool) else expected
                assert row[column] == text, (row["event_id"], column)
            received = datetime.strptime(obj["received_at"], "%Y-%m-%dT%H:%M:%S.%f%z")
            assert received >= sent_from - timedelta(seconds=1)
            assert row["received_at"] == obj["received_at"]
            props = PROPERTIES.get(row["event_id"])
            assert obj["properties"] == props
            assert (json.loads(row["properties"]) if row["properties"] else None) == props

        # Machine events on request; properties left out on request.
        data, _, _ = await export(
            s,
            events_request(t0, end, JSONL, include_machine_events=True, omit_properties=True),
        )
        objects = parse_jsonl(data)
        assert [o["event_id"] for o in objects] == ["ev-0", "ev-1", "ev-2", "ev-bot", "ev-3"]
        assert [o["machine"] for o in objects] == [False, False, False, True, False]
        assert all("properties" not in o for o in objects)

        # The range's edges: start inclusive, end exclusive, to the microsecond.
        data, _, _ = await export(
            s, events_request(t0 - timedelta(microseconds=1), end + timedelta(microseconds=1))
        )
        ids = [r["event_id"] for r in parse_csv(data)]
        assert ids == ["ev-before", "ev-0", "ev-1", "ev-2", "ev-3", "ev-end"]


async def test_empty_range_filters_and_erasure(settings):
    t0 = T0
    async with suite(settings) as s:
        await s.track(sent_events(t0))
        await s.applied()
        end = t0 + timedelta(hours=2)

        # An empty range: the CSV header alone; JSON lines: no chunk at all.
        empty_from = t0 + timedelta(days=10)
        data, finished, chunks = await export(
            s, events_request(empty_from, empty_from + timedelta(days=1))
        )
        assert data == (",".join(COLUMNS) + "\r\n").encode()
        assert (finished.row_count, finished.chunk_count) == (0, 1)
        data, finished, chunks = await export(
            s, events_request(empty_from, empty_from + timedelta(days=1), JSONL)
        )
        assert data == b"" and chunks == [] and finished.row_count == 0

        # Selectors (any matching), brand filter, one subject.
        purchase_or_click = events_request(
            t0,
            end,
            events=[
                rt.EventSelector(event_type=event_type_pb2.EVENT_TYPE_PURCHASE),
                rt.EventSelector(event_type=event_type_pb2.EVENT_TYPE_CLICK),
            ],
        )
        data, _, _ = await export(s, purchase_or_click)
        assert [r["event_id"] for r in parse_csv(data)] == ["ev-0", "ev-2"]
        data, _, _ = await export(s, events_request(t0, end, brand_ids=["stacksense"]))
        assert [r["event_id"] for r in parse_csv(data)] == ["ev-0"]
        data, _, _ = await export(s, events_request(t0, end, subject={"lead_id": "lead-1"}))
        assert [r["event_id"] for r in parse_csv(data)] == ["ev-1", "ev-2"]

        # An erased subject never appears again.
        await s.erase("lead-1")
        await s.applied()
        data, finished, _ = await export(s, events_request(t0, end, include_machine_events=True))
        assert [r["event_id"] for r in parse_csv(data)] == ["ev-0", "ev-bot", "ev-3"]
        assert b"lead-1" not in data
        data, finished, _ = await export(s, events_request(t0, end, subject={"lead_id": "lead-1"}))
        assert finished.row_count == 0


async def test_small_chunks_hold_whole_rows(settings):
    async with suite(settings) as s:
        t0 = now() - timedelta(hours=1)
        await s.track(
            [
                event(f"c-{i:03d}", lead_id=f"lead-{i % 7}", occurred_at=t0 + timedelta(seconds=i))
                for i in range(300)
            ]
        )
        await s.applied()
        request = events_request(t0, t0 + timedelta(hours=1), chunk_size_bytes=1024)
        data, finished, chunks = await export(s, request)
        assert len(chunks) > 10 and all(len(c) <= 1024 for c in chunks)
        # Every chunk parses on its own (rows never split), and together they are the file.
        pieces = [list(csv.reader(io.StringIO(c.decode(), newline=""))) for c in chunks]
        assert sum(len(p) for p in pieces) == 301
        assert [r["event_id"] for r in parse_csv(data)] == [f"c-{i:03d}" for i in range(300)]
        assert finished.row_count == 300


async def test_reports_export_what_their_rpcs_answer(settings):
    t0 = now() - timedelta(days=3)
    async with suite(settings) as s:
        sent = []
        for n in range(12):
            lead = f"lead-{n}"
            at = t0 + timedelta(hours=n)
            sent.append(
                event(
                    f"v{n}",
                    lead_id=lead,
                    occurred_at=at,
                    session_id=f"s{n}",
                    page_url="https://x.example/home",
                )
            )
            if n % 2 == 0:
                sent.append(
                    event(
                        f"p{n}",
                        lead_id=lead,
                        occurred_at=at + timedelta(minutes=3),
                        session_id=f"s{n}",
                        page_url="https://x.example/pricing",
                    )
                )
            if n % 4 == 0:
                sent.append(
                    event(
                        f"b{n}",
                        type="purchase",
                        lead_id=lead,
                        occurred_at=at + timedelta(minutes=9),
                        session_id=f"s{n}",
                        value=(10, 500_000_000, "USD"),
                    )
                )
        await s.track(sent)
        await s.applied()
        window = span(t0 - timedelta(days=1), now())

        definition = rt.FunnelDefinition(range=window)
        for step in (event_type_pb2.EVENT_TYPE_PAGE_VIEW, event_type_pb2.EVENT_TYPE_PURCHASE):
            definition.steps.add(event=rt.EventSelector(event_type=step))
        answer = await s.reporting.RunFunnel(
            pb.RunFunnelRequest(funnel=definition), metadata=s.metadata
        )
        data, finished, _ = await export(
            s, pb.ExportRequest(funnel=pb.RunFunnelRequest(funnel=definition))
        )
        rows = parse_csv(data)
        assert finished.row_count == 2
        assert (
            [int(r["count"]) for r in rows]
            == [st.count for st in answer.overall.steps]
            == [
                12,
                3,
            ]
        )
        assert (
            float(rows[1]["conversion_from_first"]) == answer.overall.steps[1].conversion_from_first
        )
        assert float(rows[1]["median_seconds_from_previous"]) == pytest.approx(540)
        assert finished.suggested_file_name.startswith("funnel_")

        paths_request = pb.GetPathsRequest(range=window)
        paths = await s.reporting.GetPaths(paths_request, metadata=s.metadata)
        data, finished, _ = await export(s, pb.ExportRequest(format=JSONL, paths=paths_request))
        edges = parse_jsonl(data)
        assert [(e["source_id"], e["target_id"], e["count"]) for e in edges] == [
            (e.source_id, e.target_id, e.count) for e in paths.edges
        ]
        assert edges and all(e["path_count"] == paths.path_count == 12 for e in edges)

        retention_request = pb.GetRetentionRequest(
            range=window, period=rt.COHORT_PERIOD_DAY, periods=3
        )
        table = await s.reporting.GetRetention(retention_request, metadata=s.metadata)
        data, _, _ = await export(s, pb.ExportRequest(format=JSONL, retention=retention_request))
        cells = parse_jsonl(data)
        assert [(c["cohort_size"], c["period"], c["active"]) for c in cells] == [
            (row.size, cell.period, cell.active) for row in table.cohorts for cell in row.cells
        ]
        assert sum(c["cohort_size"] for c in cells if c["period"] == 0) == 12
        assert {c["revenue"] for c in cells if c["converted_subjects"]} <= {
            "10.5 USD",
            "21 USD",
            "31.5 USD",
        }

        real_time_request = pb.GetRealTimeRequest(preset=rt.RANGE_PRESET_LAST_7_DAYS)
        view = await s.reporting.GetRealTime(real_time_request, metadata=s.metadata)
        data, _, _ = await export(s, pb.ExportRequest(real_time=real_time_request))
        points = parse_csv(data)
        totals = {(r["event_type"], int(r["series_total"])) for r in points}
        assert totals == {("page_view", 18), ("purchase", 3)}
        assert len(points) == sum(len(x.points) for x in view.series)
        assert sum(int(r["count"]) for r in points) == 21

        journey = pb.GetJourneyRequest(subject={"lead_id": "lead-0"})
        data, finished, _ = await export(s, pb.ExportRequest(format=JSONL, journey=journey))
        timeline = parse_jsonl(data)
        assert [e["event_id"] for e in timeline] == ["b0", "p0", "v0"]  # newest first
        assert timeline[0]["value"] == "10.5" and timeline[0]["conversion"] is True
        assert finished.suggested_file_name == "journey.jsonl"


async def test_bad_requests_are_refused_naming_the_field(settings):
    async with suite(settings) as s:

        async def refused(request: pb.ExportRequest, code=grpc.StatusCode.INVALID_ARGUMENT):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for _ in s.reporting.Export(request, metadata=s.metadata):
                    pass
            assert info.value.code() == code
            return info.value.details()

        assert "what: one of events or a report is required" in await refused(pb.ExportRequest())
        t0 = now()
        backwards = events_request(t0, t0 - timedelta(hours=1), chunk_size_bytes=10)
        details = await refused(backwards)
        assert "events.range: start_time must be before end_time" in details
        assert "chunk_size_bytes: must be in 1,024..1,048,576" in details
        funnel = pb.ExportRequest(funnel=pb.RunFunnelRequest(funnel=rt.FunnelDefinition()))
        assert "funnel.funnel.range" in await refused(funnel)
        unknown = pb.ExportRequest(journey=pb.GetJourneyRequest(subject={"lead_id": "nobody"}))
        assert "no such subject" in await refused(unknown, grpc.StatusCode.NOT_FOUND)
        ab_test = pb.ExportRequest(ab_test=pb.GetAbTestRequest())
        assert "ab_test.experiment_key" in await refused(ab_test)
