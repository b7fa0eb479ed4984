"""`make bench-reporting`: RunFunnel, GetRealTime, GetRetention and GetPaths over 30 days of
1,000,000 events, each against the same question answered by DuckDB over the same events.

1. Load: BENCH_REPORTING_EVENTS (1,000,000) events of BENCH_REPORTING_SUBJECTS (50,000)
   subjects over 30 days, 12 event types (page views with one of 40 page URLs, performance
   samples with an endpoint, a duration and a status code, purchases with a value), 5 brands,
   sessions of a subject-hour, are built as ingest's EventsRecorded messages (5,000 events
   each) and applied with the reporting consumer's own handler code
   (`Ingestion.events_recorded`, which also keeps the real-time rollups, in a transaction per
   message as the consumer runs it; the bus and the inbox are left out: 1M events through
   gRPC ingest and JetStream would take several minutes on 2 cores and measure ingest, not
   reporting).
2. The reporting service runs in this process; each query is called over gRPC
   BENCH_REPORTING_RUNS (20) times after a warm-up: p50 and p99.
   - funnel: page_view -> form_submitted -> signup -> purchase, sequential, 14-day window,
     the whole 30-day range;
   - real time: the 30 days in 1-hour buckets (720 buckets x 12 types, conversions per
     currency, percentiles per endpoint), read from the rollups;
   - retention: weekly first-seen cohorts over the 30 days, 4 later periods, any event;
   - paths: sessions that started in the 30 days, from their first event, 5 steps, top 10.
3. Baselines, same run: the same events exported to Parquet and the same questions answered
   by DuckDB from the raw events (funnel: a self-join taking the earliest next step per
   attempt; real time: counts per hour and type, conversions and endpoint quantiles;
   retention: first-seen week per subject joined with active weeks; paths: per session the
   events in time order with repeats collapsed, counted per step and item, and session
   durations). Each round calls leadflow, then runs the DuckDB question, so both are measured
   under the same moments of a shared machine's load. The funnel's step counts, the real-time
   totals, the retention cohorts and cells and the per-step path totals must be equal.
Prints `BENCH reporting_funnel <p50 ms> ms baseline=<DuckDB p50 ms> ratio=<leadflow / DuckDB>`
and `BENCH reporting_{realtime,retention,paths}_p99 <p99 ms> ms baseline=<DuckDB p99 ms>
ratio=...`.
Target: every query under 1 s; the funnel within 3x of DuckDB.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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
    "performance_sample",
]
PAGES = 40
ENDPOINTS = ["/api/checkout", "/api/search", "/api/leads", "/api/score"]
STEPS = ["page_view", "form_submitted", "signup", "purchase"]
START = datetime(2025, 3, 1, tzinfo=UTC)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class Data:
    subject: np.ndarray
    seconds: np.ndarray
    kind: np.ndarray
    source: np.ndarray
    page: np.ndarray  # page index (page views)
    endpoint: np.ndarray  # endpoint index (performance samples)
    duration: np.ndarray  # ms (performance samples)
    status: np.ndarray  # HTTP status (performance samples)
    value: np.ndarray  # whole USD (purchases)


def generate() -> Data:
    rng = np.random.default_rng(7)
    p = np.array([0.5] + [0.05] * (len(TYPES) - 1))
    return Data(
        subject=rng.integers(0, SUBJECTS, EVENTS),
        seconds=rng.integers(0, DAYS * 86400, EVENTS),
        kind=rng.choice(len(TYPES), EVENTS, p=p / p.sum()),
        source=rng.integers(0, len(SOURCES), EVENTS),
        page=np.minimum(rng.zipf(1.5, EVENTS) - 1, PAGES - 1),
        endpoint=rng.integers(0, len(ENDPOINTS), EVENTS),
        duration=np.round(rng.lognormal(4, 1, EVENTS), 3),
        status=np.where(rng.random(EVENTS) < 0.03, 503, 200),
        value=rng.integers(5, 500, EVENTS),
    )


def page_url(i: int) -> str:
    return f"https://modumind.io/page-{i}"


def messages(d: Data):
    """EventsRecorded messages as ingest publishes them."""
    type_values = [event_type_pb2.EventType.Value(f"EVENT_TYPE_{t.upper()}") for t in TYPES]
    page_view, sample, purchase = (
        TYPES.index(t) for t in ("page_view", "performance_sample", "purchase")
    )
    base = int(START.timestamp())
    for lo in range(0, EVENTS, MESSAGE):
        message = events_pb2.EventsRecorded()
        message.metadata.tenant_id = TENANT
        message.metadata.event_id = f"batch-{lo}"
        for i in range(lo, min(lo + MESSAGE, EVENTS)):
            s = int(d.subject[i])
            k = int(d.kind[i])
            e = event_pb2.RecordedEvent(
                event_id=f"ev-{i}",
                brand_id=BRANDS[s % len(BRANDS)],
                type=type_values[k],
                subject=subject_pb2.SubjectRef(lead_id=f"lead-{s}"),
                session_id=f"s-{s}-{int(d.seconds[i]) // 3600}",
                marketing=marketing_pb2.MarketingContext(
                    channel=SOURCES[d.source[i]], source=SOURCES[d.source[i]]
                ),
            )
            if k == page_view:
                e.page_url = page_url(int(d.page[i]))
            elif k == sample:
                e.properties.update(
                    {
                        "endpoint": ENDPOINTS[d.endpoint[i]],
                        "duration_ms": float(d.duration[i]),
                        "status_code": int(d.status[i]),
                    }
                )
            elif k == purchase:
                e.value.units = int(d.value[i])
                e.value.currency_code = "USD"
            e.occurred_at.seconds = base + int(d.seconds[i])
            e.received_at.seconds = base + int(d.seconds[i])
            message.events.append(e)
        yield message


async def load(runtime: Runtime, data: Data) -> float:
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
    for message in messages(data):
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


def realtime_request() -> pb.GetRealTimeRequest:
    r = pb.GetRealTimeRequest(range=time_range_pb2.TimeRange())
    r.range.start_time.FromDatetime(START)
    r.range.end_time.FromDatetime(START + timedelta(days=DAYS))
    r.bucket.FromTimedelta(timedelta(hours=1))
    return r


def retention_request() -> pb.GetRetentionRequest:
    r = pb.GetRetentionRequest(range=time_range_pb2.TimeRange(), periods=4)
    r.range.start_time.FromDatetime(START)
    r.range.end_time.FromDatetime(START + timedelta(days=DAYS))
    return r


def paths_request() -> pb.GetPathsRequest:
    r = pb.GetPathsRequest(range=time_range_pb2.TimeRange())
    r.range.start_time.FromDatetime(START)
    r.range.end_time.FromDatetime(START + timedelta(days=DAYS))
    return r


def code(name: str) -> int:
    return TYPES.index(name)


# The first Monday of the range (UTC): the first weekly cohort.
WEEK0 = 2 * 86400  # 2025-03-01 is a Saturday
DUCK_REALTIME = [
    "SELECT t // 3600 AS h, kind, count(*) FROM ev GROUP BY 1, 2",
    f"SELECT t // 3600 AS h, count(*), sum(value) FROM ev"
    f" WHERE kind IN ({code('signup')}, {code('purchase')}) GROUP BY 1",
    "SELECT endpoint, count(*), quantile_disc(duration, [0.5, 0.95, 0.99]),"
    f" count(*) FILTER (WHERE status >= 500) FROM ev WHERE kind = {code('performance_sample')}"
    " GROUP BY 1",
]
_COHORTS = f"""
WITH c AS (SELECT subject, floor((min(t) - {WEEK0}) / 604800)::BIGINT AS cohort
           FROM ev GROUP BY 1),
a AS (SELECT DISTINCT subject, (t - {WEEK0}) // 604800 AS wk FROM ev WHERE t >= {WEEK0}),
v AS (SELECT DISTINCT subject, (t - {WEEK0}) // 604800 AS wk FROM ev
      WHERE t >= {WEEK0} AND kind IN ({code("signup")}, {code("purchase")}))
"""
# (cohort, size, converted subjects), then (cohort, period, active subjects).
DUCK_RETENTION = [
    _COHORTS
    + """SELECT cohort, count(*), count(*) FILTER (WHERE subject IN (SELECT subject FROM v
         WHERE v.wk - c.cohort BETWEEN 0 AND 4)) FROM c WHERE cohort BETWEEN 0 AND 3
         GROUP BY 1 ORDER BY 1""",
    _COHORTS
    + """SELECT cohort, wk - cohort AS k, count(*) FROM c JOIN a USING (subject)
         WHERE cohort BETWEEN 0 AND 3 AND wk - cohort BETWEEN 0 AND 4 GROUP BY 1, 2""",
]
DUCK_PATHS = [
    """
WITH e AS (SELECT subject, session, item, row_number() OVER w AS rn, lag(item) OVER w AS prev
           FROM ev WINDOW w AS (PARTITION BY subject, session ORDER BY t, id)),
c AS (SELECT row_number() OVER (PARTITION BY subject, session ORDER BY rn) - 1 AS step, item
      FROM e WHERE prev IS NULL OR prev <> item)
SELECT step, count(*) FROM c WHERE step <= 5 GROUP BY 1 ORDER BY 1
""",
    "SELECT median(d), avg(d), quantile_cont(d, 0.9) FROM"
    " (SELECT max(t) - min(t) AS d FROM ev GROUP BY subject, session)",
    f"SELECT item, count(*), count(DISTINCT subject) FROM ev WHERE kind = {code('page_view')}"
    " GROUP BY 1 ORDER BY 2 DESC LIMIT 10",
]


def parquet(d: Data, folder: Path) -> duckdb.DuckDBPyConnection:
    path = folder / "events.parquet"
    item = np.where(d.kind == code("page_view"), 1000 + d.page, -d.kind)
    pq.write_table(
        pa.table(
            {
                "id": np.arange(EVENTS),
                "subject": d.subject,
                "t": d.seconds,
                "kind": d.kind,
                "session": d.seconds // 3600,
                "item": item,
                "endpoint": d.endpoint,
                "duration": d.duration,
                "status": d.status,
                "value": np.where(d.kind == code("purchase"), d.value, 0),
            }
        ),
        path,
    )
    con = duckdb.connect()
    con.execute(f"CREATE VIEW ev AS SELECT * FROM read_parquet('{path}')")
    return con


@dataclass
class Timing:
    """One report, leadflow and DuckDB measured alternately (the same moments of a shared
    machine's load): p50 / p99 ms of each, and the last answers."""

    p50: float
    p99: float
    reply: Any
    duck_p50: float
    duck_p99: float
    answers: list


async def timed(
    name: str, call, request, metadata, con: duckdb.DuckDBPyConnection, sqls: list[str]
) -> Timing:
    """RUNS rounds after a warm-up of each; a round is one gRPC call, then the same question
    answered by DuckDB (all of `sqls`)."""
    reply = await call(request, metadata=metadata)
    answers = [con.execute(sql).fetchall() for sql in sqls]
    ours: list[float] = []
    theirs: list[float] = []
    for i in range(RUNS):
        t0 = time.perf_counter()
        reply = await call(request, metadata=metadata)
        t1 = time.perf_counter()
        answers = [con.execute(sql).fetchall() for sql in sqls]
        t2 = time.perf_counter()
        ours.append((t1 - t0) * 1000)
        theirs.append((t2 - t1) * 1000)
        if i % 5 == 4:
            log(
                f"[{name}] {i + 1}/{RUNS} rounds, last {ours[-1]:.0f} ms,"
                f" DuckDB {theirs[-1]:.0f} ms"
            )
    t = Timing(
        float(np.percentile(ours, 50)),
        float(np.percentile(ours, 99)),
        reply,
        float(np.percentile(theirs, 50)),
        float(np.percentile(theirs, 99)),
        answers,
    )
    log(
        f"{name}: leadflow p50 {t.p50:.0f} ms, p99 {t.p99:.0f} ms; DuckDB p50 {t.duck_p50:.0f} ms,"
        f" p99 {t.duck_p99:.0f} ms (load {os.getloadavg()[0]:.1f})"
    )
    return t


def check(name: str, ours: object, theirs: object, tolerance: float = 0.0) -> None:
    """Stop when the two answers differ (beyond a relative tolerance for totals)."""
    if tolerance and isinstance(ours, list) and isinstance(theirs, list):
        close = len(ours) == len(theirs) and all(
            abs(a - b) <= tolerance * max(abs(b), 1) for a, b in zip(ours, theirs, strict=True)
        )
    else:
        close = ours == theirs
    if not close:
        raise SystemExit(f"{name} differs: leadflow {ours}, DuckDB {theirs}")
    log(f"{name}: equal to DuckDB's")


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
            data = generate()
            seconds = await load(runtime, data)
            rate = EVENTS / seconds
            log(f"loaded through the consumer's handler in {seconds:.1f} s ({rate:,.0f} events/s)")
            metadata = (("authorization", f"Bearer {key}"),)
            con = parquet(data, Path(tmp))
            codes = [code(t) for t in STEPS]
            funnel_sql = DUCK_SQL.format(
                a=codes[0], b=codes[1], c=codes[2], d=codes[3], w=WINDOW_DAYS * 86400
            )
            async with open_channel(f"127.0.0.1:{runtime.port}") as channel:
                stub = reporting_service_pb2_grpc.ReportingServiceStub(channel)
                funnel = await timed(
                    "RunFunnel", stub.RunFunnel, funnel_request(), metadata, con, [funnel_sql]
                )
                realtime = await timed(
                    "GetRealTime", stub.GetRealTime, realtime_request(), metadata, con,
                    DUCK_REALTIME,
                )  # fmt: skip
                retention = await timed(
                    "GetRetention", stub.GetRetention, retention_request(), metadata, con,
                    DUCK_RETENTION,
                )  # fmt: skip
                paths = await timed(
                    "GetPaths", stub.GetPaths, paths_request(), metadata, con, DUCK_PATHS
                )
            (funnel_answer,) = funnel.answers
            realtime_answer = realtime.answers
            cohorts, cells = retention.answers
            paths_answer = paths.answers
            check(
                "funnel step counts",
                [x.count for x in funnel.reply.overall.steps],
                list(funnel_answer[0]),
            )
            per_type: Counter[int] = Counter()
            for _, kind, n in realtime_answer[0]:
                per_type[kind] += n
            check(
                "real-time totals per type",
                sorted(
                    (code(event_type_pb2.EventType.Name(x.event_type)[11:].lower()), x.total)
                    for x in realtime.reply.series
                ),
                sorted(per_type.items()),
            )
            replies = retention.reply.cohorts
            found = {c: (size, converted) for c, size, converted in cohorts}
            check(
                "retention cohort sizes and conversions",
                [(c.size, c.converted_subjects) for c in replies],
                [found.get(c, (0, 0)) for c in range(len(replies))],
            )
            active = {(c, k): n for c, k, n in cells}
            check(
                "retention cells",
                [[x.active for x in c.cells] for c in replies],
                [[active.get((c, k), 0) for k in range(5)] for c in range(len(replies))],
            )
            step_totals: Counter[int] = Counter()
            for node in paths.reply.nodes:
                step_totals[node.step] += node.count
            # Events of one session in the same second may be ordered either way.
            check(
                "paths per-step totals",
                [step_totals[k] for k in range(6)],
                [dict(paths_answer[0]).get(k, 0) for k in range(6)],
                tolerance=1e-4,
            )
            load1, load5, load15 = os.getloadavg()
            print(f"load average {load1:.2f} {load5:.2f} {load15:.2f}", flush=True)
            for name, t in (
                ("funnel", funnel),
                ("realtime", realtime),
                ("retention", retention),
                ("paths", paths),
            ):
                print(
                    f"{name}: p50 {t.p50:.0f} ms, p99 {t.p99:.0f} ms (target < 1000 ms);"
                    f" DuckDB p50 {t.duck_p50:.0f} ms, p99 {t.duck_p99:.0f} ms",
                    flush=True,
                )
            bench_line(
                "reporting_funnel", funnel.p50, "ms", funnel.duck_p50, funnel.p50 / funnel.duck_p50
            )
            for name, t in (("realtime", realtime), ("retention", retention), ("paths", paths)):
                bench_line(f"reporting_{name}_p99", t.p99, "ms", t.duck_p99, t.p99 / t.duck_p99)
        finally:
            runtime.request_stop()
            await asyncio.wait_for(task, 30)


if __name__ == "__main__":
    asyncio.run(main())
