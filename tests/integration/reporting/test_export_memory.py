"""Export in constant memory: 100,000 events (written straight into the read model through
the repository the consumer uses, to keep the test fast) stream out while the process's
traced Python memory grows by a small bounded amount, far below the file's size; progress
lines are logged along the way."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from reporting_support import TENANT, suite

from leadflow.common.v1 import time_range_pb2
from leadflow.reporting.v1 import reporting_service_pb2 as pb
from leadflow_reporting import export
from leadflow_reporting.db import repository as repo

pytestmark = pytest.mark.integration

EVENTS = 100_000
LEADS = 2_000
BATCH = 10_000
# Traced memory the export may add, whatever the range's size: one cursor batch of rows
# (export.BATCH_ROWS), one chunk and the encoders' working set.
BOUND_BYTES = 12 * 1024 * 1024


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))


async def load(pool: Any, start: datetime) -> None:
    async with pool.acquire() as conn, conn.transaction():
        subjects = await repo.lead_subjects(conn, TENANT, [f"lead-{n}" for n in range(LEADS)])
    for first in range(0, EVENTS, BATCH):
        rows = [
            repo.EventRow(
                event_id=f"m-{i:06d}",
                subject_id=subjects[f"lead-{i % LEADS}"],
                occurred_at=start + timedelta(seconds=i),
                received_at=start + timedelta(seconds=i, milliseconds=40),
                event_type=1,
                custom_name="",
                machine=False,
                brand_id="modumind",
                session_id=f"s-{i // 10}",
                page_url=f"https://modumind.example/docs/{i % 97}",
                page_path=f"https://modumind.example/docs/{i % 97}",
                referrer="",
                channel="email",
                source="newsletter",
                medium="email",
                campaign="spring",
                content="",
                term="",
                country="DE",
                region="",
                city="",
                value_units=None,
                value_nanos=None,
                currency_code="",
                properties={"plan": "pro", "n": i},
            )
            for i in range(first, min(first + BATCH, EVENTS))
        ]
        async with pool.acquire() as conn, conn.transaction():
            assert await repo.insert_events(conn, TENANT, rows) == len(rows)


async def test_a_large_export_streams_in_bounded_memory(settings, monkeypatch):
    start = (datetime.now(UTC) - timedelta(days=20)).replace(microsecond=0)
    recorder = Recorder()
    monkeypatch.setattr(export, "log", recorder)
    async with suite(settings) as s:
        await load(s.pool, start)
        request = pb.ExportRequest(events=pb.ExportEventsQuery(range=time_range_pb2.TimeRange()))
        request.events.range.start_time.FromDatetime(start)
        request.events.range.end_time.FromDatetime(start + timedelta(days=2))

        rows = size = largest = 0
        finished = None
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            before, _ = tracemalloc.get_traced_memory()
            async for m in s.reporting.Export(request, metadata=s.metadata):
                if m.WhichOneof("payload") == "finished":
                    finished = m.finished
                    continue
                chunk = m.chunk
                size += len(chunk)
                largest = max(largest, len(chunk))
                # Rows in order, none lost or repeated (event ids are numbered).
                for line in chunk.split(b"\r\n")[:-1]:
                    event_id = line.split(b",", 1)[0]
                    if event_id == b"event_id":
                        continue
                    assert event_id == f"m-{rows:06d}".encode()
                    rows += 1
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        assert finished is not None
        assert rows == finished.row_count == EVENTS
        assert size == finished.byte_count > 15 * 1024 * 1024
        assert largest <= 65_536
        growth = peak - before
        assert growth < BOUND_BYTES, f"peak grew by {growth:,} bytes"
        assert growth < size / 3

    progress = [f for event, f in recorder.lines if event == "export_progress"]
    assert [f["rows"] for f in progress] == list(range(50_000, EVENTS + 1, 50_000))
    assert all(f["export"] == "events" and f["bytes"] > 0 for f in progress)
    done = [f for event, f in recorder.lines if event == "export_finished"]
    assert done and done[0]["rows"] == EVENTS
