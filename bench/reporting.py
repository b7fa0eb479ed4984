"""`make bench-reporting`: a 4-step funnel over 30 days of 1,000,000 events, against DuckDB.

1. Load: BENCH_REPORTING_EVENTS (1,000,000) events of BENCH_REPORTING_SUBJECTS (50,000)
   subjects over 30 days, 11 event types, 5 brands, are built as ingest's EventsRecorded
   messages (5,000 events each) and applied with the reporting consumer's own handler code
   (`Ingestion.events_recorded`, in a transaction per message as the consumer runs it; the
   bus and the inbox are left out: 1M events through gRPC ingest and JetStream would take
   several minutes on 2 cores and measure ingest, not reporting).
2. The reporting service runs in this process; RunFunnel (page_view -> form_submitted ->
   signup -> purchase, sequential, 14-day window, the whole 30-day range) is called over
   gRPC BENCH_REPORTING_RUNS (20) times after a warm-up: p50 and p99.
3. Baseline, same run: the same events exported to Parquet and the same funnel answered by
   DuckDB (a self-join taking the earliest next step per attempt), median of 5 runs. The
   step counts of both must be equal.
Prints `BENCH reporting_funnel <p50 ms> ms baseline=<DuckDB ms> ratio=<leadflow / DuckDB>`.
Target: under 1 s, within 3x of DuckDB. (Real-time, retention and paths figures come with
the slices that build those reports.)
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _common import Progress, bench_line, fresh_database, servers

from leadflow.common.v1 import event_type_pb2, marketing_pb2, subject_pb2, time_range_pb2
from leadflow.ingest.v1 import event_pb2, events_pb2
from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow.reporting.v1 import reporting_service_pb2 as pb
from leadflow.reporting.v1 import reporting_service_pb2_grpc
from leadflow_platform.db.migrations_runner import migrate
from leadflow_platform.grpc.client import open_channel
from leadflow_platform.lifecycle import Runtime
from leadflow_platform.service import tenancy_migrations
from leadflow_platform.settings import Settings
from leadflow_platform.tenancy.keys import Scope
from leadflow_platform.tenancy.store import SCHEMA as TENANCY_SCHEMA
from leadflow_platform.tenancy.store import create_key
from leadflow_reporting.app import SPEC
from leadflow_reporting.ingestion import Ingestion

EVENTS = int(os.environ.get("BENCH_REPORTING_EVENTS", "1000000"))
SUBJECTS = int(os.environ.get("BENCH_REPORTING_SUBJECTS", "50000"))
RUNS = int(os.environ.get("BENCH_REPORTING_RUNS", "20"))
MESSAGE = 5000
LOADERS = 2
DAYS = 30
WINDOW_DAYS = 14
TENANT = "bench"
BRANDS = ["modumind", "stacksense", "epicquest", "ikid", "vision2results"]
SOURCES = ["email", "google", "twitter", "linkedin", "direct"]
# page_view half the events, ten other types 5% each.
TYPES = [
    "page_view",
    "click",
    "scroll",
    "search",
    "form_submitted",
    "email_sent",
    "content_downloaded",
    "signup",
    "ad_clicked",
    "purchase",
    "tool_usage",
]
STEPS = ["page_view", "form_submitted", "signup", "purchase"]
START = datetime(2025, 3, 1, tzinfo=UTC)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def generate() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    subject = rng.integers(0, SUBJECTS, EVENTS)
    seconds = rng.integers(0, DAYS * 86400, EVENTS)
    p = np.array([0.5] + [0.05] * 10)
    kind = rng.choice(len(TYPES), EVENTS, p=p / p.sum())
    source = rng.integers(0, len(SOURCES), EVENTS)
    return subject, seconds, kind, source


def messages(subject, seconds, kind, source):
    """EventsRecorded messages as ingest publishes them."""
    type_values = [event_type_pb2.EventType.Value(f"EVENT_TYPE_{t.upper()}") for t in TYPES]
    base = int(START.timestamp())
    for lo in range(0, EVENTS, MESSAGE):
        message = events_pb2.EventsRecorded()
        message.metadata.tenant_id = TENANT
        message.metadata.event_id = f"batch-{lo}"
        for i in range(lo, min(lo + MESSAGE, EVENTS)):
            s = int(subject[i])
            e = event_pb2.RecordedEvent(
                event_id=f"ev-{i}",
                brand_id=BRANDS[s % len(BRANDS)],
                type=type_values[kind[i]],
                subject=subject_pb2.SubjectRef(lead_id=f"lead-{s}"),
                session_id=f"s-{s}-{int(seconds[i]) // 3600}",
                marketing=marketing_pb2.MarketingContext(
                    channel=SOURCES[source[i]], source=SOURCES[source[i]]
                ),
            )
            e.occurred_at.seconds = base + int(seconds[i])
            e.received_at.seconds = base + int(seconds[i])
            message.events.append(e)
        yield message


async def load(runtime: Runtime, arrays) -> float:
    ingestion = Ingestion()
    queue: asyncio.Queue = asyncio.Queue(maxsize=4)
    progress = Progress("load", EVENTS, "events")
    done = 0

    async def worker() -> None:
        nonlocal done
        while (message := await queue.get()) is not None:
            async with runtime.pool.acquire() as conn, conn.transaction():
                await ingestion.events_recorded(conn, TENANT, message)
            done += len(message.events)
            progress.update(done)

    started = time.perf_counter()
    workers = [asyncio.create_task(worker()) for _ in range(LOADERS)]
    for message in messages(*arrays):
        await queue.put(message)
        await asyncio.sleep(0)
    for _ in workers:
        await queue.put(None)
    await asyncio.gather(*workers)
    progress.update(done, force=True)
    elapsed = time.perf_counter() - started
    async with runtime.pool.acquire() as conn:
        await conn.execute("VACUUM ANALYZE events")
        stored = await conn.fetchval("SELECT count(*) FROM events")
    assert stored == EVENTS, stored
    return elapsed


def funnel_request() -> pb.RunFunnelRequest:
    d = rt.FunnelDefinition(range=time_range_pb2.TimeRange())
    d.range.start_time.FromDatetime(START)
    d.range.end_time.FromDatetime(START + timedelta(days=DAYS))
    d.conversion_window.FromTimedelta(timedelta(days=WINDOW_DAYS))
    for t in STEPS:
        d.steps.add(
            event=rt.EventSelector(
                event_type=event_type_pb2.EventType.Value(f"EVENT_TYPE_{t.upper()}")
            )
        )
    return pb.RunFunnelRequest(funnel=d)


DUCK_SQL = """
WITH s1 AS (SELECT subject, t AS t1 FROM ev WHERE kind = {a}),
s2 AS (SELECT s1.subject, s1.t1, min(e.t) AS t2 FROM s1 JOIN ev e ON e.subject = s1.subject
       AND e.kind = {b} AND e.t > s1.t1 AND e.t <= s1.t1 + {w} GROUP BY 1, 2),
s3 AS (SELECT s2.subject, s2.t1, min(e.t) AS t3 FROM s2 JOIN ev e ON e.subject = s2.subject
       AND e.kind = {c} AND e.t > s2.t2 AND e.t <= s2.t1 + {w} GROUP BY 1, 2),
s4 AS (SELECT s3.subject, s3.t1, min(e.t) AS t4 FROM s3 JOIN ev e ON e.subject = s3.subject
       AND e.kind = {d} AND e.t > s3.t3 AND e.t <= s3.t1 + {w} GROUP BY 1, 2)
SELECT (SELECT count(DISTINCT subject) FROM s1), (SELECT count(DISTINCT subject) FROM s2),
       (SELECT count(DISTINCT subject) FROM s3), (SELECT count(DISTINCT subject) FROM s4)
"""


def duckdb_funnel(arrays, folder: Path) -> tuple[float, list[int]]:
    subject, seconds, kind, _ = arrays
    path = folder / "events.parquet"
    pq.write_table(pa.table({"subject": subject, "t": seconds, "kind": kind}), path)
    con = duckdb.connect()
    con.execute(f"CREATE VIEW ev AS SELECT * FROM read_parquet('{path}')")
    codes = [TYPES.index(t) for t in STEPS]
    sql = DUCK_SQL.format(a=codes[0], b=codes[1], c=codes[2], d=codes[3], w=WINDOW_DAYS * 86400)
    times, counts = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        counts = list(con.execute(sql).fetchone() or ())
        times.append((time.perf_counter() - t0) * 1000)
    log(f"duckdb: {', '.join(f'{t:.0f}' for t in times)} ms; counts {counts}")
    return statistics.median(times), counts


async def main() -> None:
    with servers() as s, tempfile.TemporaryDirectory(prefix="bench-reporting-") as tmp:
        database_url = await fresh_database(s.admin_url, "bench_reporting")
        settings = Settings.from_env({}).with_overrides(
            database_url=database_url, nats_url=s.nats_url, grpc_port=0, bus_namespace="benchrep"
        )
        import asyncpg

        conn = await asyncpg.connect(database_url)
        try:
            await migrate(conn, TENANCY_SCHEMA, tenancy_migrations())
            key = (await create_key(conn, TENANT, {Scope.READ})).token
        finally:
            await conn.close()
        runtime = Runtime(SPEC, settings)
        task = asyncio.create_task(runtime.run(install_signal_handlers=False))
        while not runtime.ready:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        try:
            log(f"generating {EVENTS:,} events of {SUBJECTS:,} subjects over {DAYS} days")
            arrays = generate()
            seconds = await load(runtime, arrays)
            rate = EVENTS / seconds
            log(f"loaded through the consumer's handler in {seconds:.1f} s ({rate:,.0f} events/s)")
            request = funnel_request()
            metadata = (("authorization", f"Bearer {key}"),)
            async with open_channel(f"127.0.0.1:{runtime.port}") as channel:
                stub = reporting_service_pb2_grpc.ReportingServiceStub(channel)
                reply = await stub.RunFunnel(request, metadata=metadata)  # warm-up
                times = []
                for i in range(RUNS):
                    t0 = time.perf_counter()
                    reply = await stub.RunFunnel(request, metadata=metadata)
                    times.append((time.perf_counter() - t0) * 1000)
                    if i % 5 == 4:
                        log(f"[funnel] {i + 1}/{RUNS} runs, last {times[-1]:.0f} ms")
            counts = [x.count for x in reply.overall.steps]
            p50 = float(np.percentile(times, 50))
            p99 = float(np.percentile(times, 99))
            log(f"leadflow RunFunnel: p50 {p50:.0f} ms, p99 {p99:.0f} ms; counts {counts}")
            baseline, duck_counts = duckdb_funnel(arrays, Path(tmp))
            if counts != duck_counts:
                raise SystemExit(f"counts differ: leadflow {counts}, DuckDB {duck_counts}")
            log("step counts equal DuckDB's")
            print(f"funnel p99 {p99:.0f} ms (target < 1000 ms)", flush=True)
            bench_line("reporting_funnel", p50, "ms", baseline, p50 / baseline)
        finally:
            runtime.request_stop()
            await asyncio.wait_for(task, 30)


if __name__ == "__main__":
    asyncio.run(main())
