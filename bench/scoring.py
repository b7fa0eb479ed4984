"""`make bench-scoring`: scoring's throughput beside ingest's, and event-to-score latency.

Ingest and scoring run in their own processes (LEADFLOW_WORKERS each, default 2: one per
core of a 2-core machine), against the same PostgreSQL and NATS, as `leadflow up` runs them.

1. Throughput: BENCH_SCORING_EVENTS (200,000) events of BENCH_SCORING_LEADS (20,000) leads
   are sent through ingest as fast as it takes them (TrackBatch, 1,000 per call, 8 calls in
   flight). The ingest rate is events / time until every event is committed and published;
   the scoring rate is events / time until scoring has applied every one (its inbox holds
   every message ingest published, every lead rescored). Both run at once on the same
   machine; scoring keeps up when the ratio is near 1.
2. Latency at a fixed offered rate: BENCH_SCORING_RATE (2,000) events/s for
   BENCH_SCORING_SECONDS (20) s in batches of BENCH_SCORING_BATCH (50), spread over the same
   leads. An event's latency runs from just before its batch is sent to the moment its
   lead's scoring.score.changed (whose causation id is the event) arrives on the bus; the
   baseline is the same event's ingest latency (until its ingest.event.recorded arrives).
   Target: p99 below 250 ms, and no growing lag (the rescoring of the last batch arrives
   within the same bound). Scoring applies the messages of a fetch together, so an event
   applied with a later event of its lead is announced under the later one's id and has
   no sample of its own (a few percent of events at this rate).

For where scoring's CPU goes, bench/_scoring_profile.py drives its handler in one process.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import nats
from _common import CpuMeter, Progress, bench_line, fresh_database, servers

from leadflow.common.v1 import event_type_pb2, marketing_pb2, subject_pb2
from leadflow.ingest.v1 import event_pb2, events_pb2, ingest_service_pb2, ingest_service_pb2_grpc
from leadflow.scoring.v1 import events_pb2 as scoring_events_pb2
from leadflow_platform.embedded import free_port
from leadflow_platform.grpc.client import health_status, open_channel
from leadflow_platform.tenancy.keys import Scope
from leadflow_platform.tenancy.store import create_key

TOTAL = int(os.environ.get("BENCH_SCORING_EVENTS", "200000"))
LEADS = int(os.environ.get("BENCH_SCORING_LEADS", "20000"))
RATE = float(os.environ.get("BENCH_SCORING_RATE", "2000"))
SECONDS = float(os.environ.get("BENCH_SCORING_SECONDS", "20"))
LATENCY_BATCH = int(os.environ.get("BENCH_SCORING_BATCH", "50"))
INGEST_WORKERS = int(os.environ.get("BENCH_SCORING_INGEST_WORKERS", "2"))
SCORING_WORKERS = int(os.environ.get("BENCH_SCORING_WORKERS", "2"))
BATCH = 1000
IN_FLIGHT = 8
TARGET_P99_MS = 250.0
BRANDS = ["modumind", "stacksense", "epicquest", "ikid", "vision2results"]
TYPES = (
    ["page_view"] * 10
    + ["click", "scroll", "email_sent", "email_opened", "email_clicked", "content_downloaded"]
    + ["form_submitted", "email_replied", "meeting_scheduled", "purchase"]
)
SOURCES = [
    ("google", "cpc"),
    ("newsletter", "email"),
    ("twitter", "social"),
    ("partner", "referral"),
]


def generate(count: int, prefix: str, seed: int, start: datetime) -> list[event_pb2.TrackEvent]:
    rng = random.Random(seed)
    events = []
    for i in range(count):
        lead = rng.randrange(LEADS)
        e = event_pb2.TrackEvent(
            event_id=f"{prefix}-{i:07d}",
            brand_id=BRANDS[lead % len(BRANDS)],
            type=event_type_pb2.EventType.Value(f"EVENT_TYPE_{rng.choice(TYPES).upper()}"),
            subject=subject_pb2.SubjectRef(lead_id=f"lead-{lead}"),
            page_url=f"https://{BRANDS[lead % len(BRANDS)]}.example/pricing",
        )
        e.occurred_at.FromDatetime(start + timedelta(milliseconds=i * 10))
        if i % 4 == 0:
            source, medium = rng.choice(SOURCES)
            e.marketing.CopyFrom(
                marketing_pb2.MarketingContext(source=source, medium=medium, campaign="launch")
            )
        events.append(e)
    return events


class Stack:
    """Ingest and scoring in their own processes on one database and NATS."""

    def __init__(self, database_url: str, nats_url: str) -> None:
        self.database_url = database_url
        self.nats_url = nats_url
        self.ingest_port = free_port()
        self.scoring_port = free_port()
        self.processes: list[subprocess.Popen[bytes]] = []
        self.key = ""

    def _env(self, port: int, workers: int) -> dict[str, str]:
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")},
            "LEADFLOW_DATABASE_URL": self.database_url,
            "LEADFLOW_NATS_URL": self.nats_url,
            "LEADFLOW_GRPC_HOST": "127.0.0.1",
            "LEADFLOW_GRPC_PORT": str(port),
            "LEADFLOW_METRICS_PORT": "0",
            "LEADFLOW_LOG_LEVEL": "warning",
            "LEADFLOW_TRACING": "false",
            "LEADFLOW_INGEST_EVENTS_PER_SECOND": "10000000",
            "LEADFLOW_WORKERS": str(workers),
        }

    async def start(self) -> None:
        conn = await asyncpg.connect(self.database_url)
        try:
            from leadflow_platform.db.migrations_runner import migrate
            from leadflow_platform.service import tenancy_migrations

            await migrate(conn, "tenancy", tenancy_migrations())
            self.key = (await create_key(conn, "bench", frozenset({Scope.ADMIN}))).token
        finally:
            await conn.close()
        # Ingest first: it creates the INGEST stream scoring's consumer reads.
        for module, port, workers in (
            ("leadflow_ingest", self.ingest_port, INGEST_WORKERS),
            ("leadflow_scoring", self.scoring_port, SCORING_WORKERS),
        ):
            self.processes.append(
                subprocess.Popen([sys.executable, "-m", module], env=self._env(port, workers))
            )
            await self._healthy(f"127.0.0.1:{port}", self.processes[-1])

    @staticmethod
    async def _healthy(target: str, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 90
        while await health_status(target) != "SERVING":
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{target} did not become healthy")
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            process.wait(60)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.key}"),)


async def throughput(stack: Stack, pool: asyncpg.Pool) -> tuple[float, float]:
    """(ingest events/s, scoring events/s) for TOTAL events sent as fast as ingest takes them."""
    events = generate(TOTAL, "tp", 7, datetime.now(UTC) - timedelta(hours=2))
    batches = [
        ingest_service_pb2.TrackBatchRequest(events=events[i : i + BATCH])
        for i in range(0, len(events), BATCH)
    ]
    queue: asyncio.Queue[ingest_service_pb2.TrackBatchRequest] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)
    progress = Progress("ingest", TOTAL, "events")
    sent = 0

    async def sender() -> None:
        nonlocal sent
        async with open_channel(f"127.0.0.1:{stack.ingest_port}", own_connection=True) as channel:
            stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
            while not queue.empty():
                batch = queue.get_nowait()
                reply = await stub.TrackBatch(batch, metadata=stack.metadata, timeout=120)
                if reply.accepted != len(batch.events):
                    raise RuntimeError(f"not all accepted: {reply.rejected} rejected")
                sent += len(batch.events)
                progress.update(sent)

    cpu = CpuMeter()
    cpu.start()
    started = time.monotonic()
    senders = asyncio.gather(*(sender() for _ in range(IN_FLIGHT)))
    ingest_done = scoring_done = None
    scoring_progress = Progress("scoring", TOTAL, "events")
    while ingest_done is None or scoring_done is None:
        # count(*) over 200,000 rows costs tens of ms: polled often it would take a share of
        # the machine from the services measured.
        await asyncio.sleep(0.5)
        if senders.done():
            senders.result()
        if ingest_done is None:
            stored = await pool.fetchval("SELECT count(*) FROM ingest.events")
            pending = await pool.fetchval(
                "SELECT count(*) FROM ingest.outbox WHERE published_at IS NULL"
            )
            if stored == TOTAL and pending == 0:
                ingest_done = time.monotonic() - started
        if scoring_done is None:
            # Done when scoring has applied every message ingest published (its inbox holds
            # them all): machine-flagged events are applied without being counted, so the
            # count of counted events alone never reaches TOTAL.
            applied = await pool.fetchval("SELECT count(*) FROM scoring.events")
            scoring_progress.update(applied)
            if ingest_done is not None:
                published = await pool.fetchval("SELECT count(*) FROM ingest.outbox")
                consumed = await pool.fetchval(
                    "SELECT count(*) FROM scoring.inbox WHERE consumer = 'scoring-ingest-events'"
                )
                if consumed >= published:
                    scoring_done = time.monotonic() - started
    await senders
    cpu.stop()
    # The latency run measures a steady state: scoring's relay publishes the throughput
    # run's ~2.4 outbox rows per event after they are applied, in id order, so a score of
    # the latency run would otherwise queue behind hundreds of thousands of them.
    while await pool.fetchval("SELECT count(*) FROM scoring.outbox WHERE published_at IS NULL"):  # noqa: ASYNC110 - polls the database
        await asyncio.sleep(0.5)
    drained = time.monotonic() - started
    print(
        f"ingest done in {ingest_done:.1f} s, scoring in {scoring_done:.1f} s, its outbox"
        f" published by {drained:.1f} s; CPU per event: {cpu.per_item(TOTAL)}",
        file=sys.stderr,
        flush=True,
    )
    return TOTAL / ingest_done, TOTAL / scoring_done


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def latency(stack: Stack, namespace_nats: str) -> tuple[list[float], list[float], float]:
    """Event-to-score and event-to-ingest-message latencies (ms) at RATE events/s, and how
    long after the last batch was sent its last score arrived."""
    count = int(RATE * SECONDS)
    events = generate(count, "lat", 11, datetime.now(UTC))
    sent_at: dict[str, float] = {}
    scored: dict[str, float] = {}
    recorded: dict[str, float] = {}
    nc = await nats.connect(namespace_nats)

    async def on_score(msg: nats.aio.msg.Msg) -> None:
        changed = scoring_events_pb2.ScoreChanged.FromString(msg.data)
        scored.setdefault(changed.metadata.causation_id, time.monotonic())

    async def on_recorded(msg: nats.aio.msg.Msg) -> None:
        now = time.monotonic()
        for e in events_pb2.EventsRecorded.FromString(msg.data).events:
            recorded.setdefault(e.event_id, now)

    await nc.subscribe("scoring.score.changed", cb=on_score)
    await nc.subscribe("ingest.event.recorded", cb=on_recorded)
    progress = Progress("latency run", count, "events")
    try:
        async with open_channel(f"127.0.0.1:{stack.ingest_port}") as channel:
            stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
            interval = LATENCY_BATCH / RATE
            started = time.monotonic()
            calls = []
            for n, i in enumerate(range(0, count, LATENCY_BATCH)):
                await asyncio.sleep(max(0.0, started + n * interval - time.monotonic()))
                batch = events[i : i + LATENCY_BATCH]
                now = time.monotonic()
                for e in batch:
                    sent_at[e.event_id] = now
                calls.append(
                    asyncio.ensure_future(
                        stub.TrackBatch(
                            ingest_service_pb2.TrackBatchRequest(events=batch),
                            metadata=stack.metadata,
                            timeout=60,
                        )
                    )
                )
                progress.update(i + len(batch))
            last_sent = time.monotonic()
            await asyncio.gather(*calls)
            # Wait for the last batch's scores (or give up after a while: lag).
            last_ids = [e.event_id for e in events[-LATENCY_BATCH:]]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any(i in scored for i in last_ids):  # noqa: ASYNC110 - polled from a NATS callback's dict
                await asyncio.sleep(0.01)
            await asyncio.sleep(1.0)  # late stragglers of earlier batches
            tail = max((scored[i] for i in last_ids if i in scored), default=float("nan"))
    finally:
        await nc.close()
    score_ms = [(scored[i] - sent_at[i]) * 1000 for i in sent_at if i in scored]
    ingest_ms = [(recorded[i] - sent_at[i]) * 1000 for i in sent_at if i in recorded]
    print(
        f"latency samples: {len(score_ms):,} scored of {count:,} events"
        f" ({len(ingest_ms):,} seen from ingest)",
        file=sys.stderr,
        flush=True,
    )
    return score_ms, ingest_ms, (tail - last_sent) * 1000


async def main() -> None:
    with servers() as s:
        database_url = await fresh_database(s.admin_url, "bench_scoring")
        stack = Stack(database_url, s.nats_url)
        await stack.start()
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
        try:
            ingest_rate, scoring_rate = await throughput(stack, pool)
            score_ms, ingest_ms, tail_ms = await latency(stack, s.nats_url)
        finally:
            await pool.close()
            stack.stop()
    p50, p99 = percentile(score_ms, 0.50), percentile(score_ms, 0.99)
    i50, i99 = percentile(ingest_ms, 0.50), percentile(ingest_ms, 0.99)
    print(
        f"throughput: ingest {ingest_rate:,.0f} events/s, scoring {scoring_rate:,.0f} events/s\n"
        f"at {RATE:,.0f} events/s: event-to-score p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        f" (target p99 < {TARGET_P99_MS:.0f} ms); ingest alone p50 {i50:.1f} ms,"
        f" p99 {i99:.1f} ms; last batch scored {tail_ms:.0f} ms after it was sent",
        file=sys.stderr,
    )
    bench_line(
        "scoring_throughput", scoring_rate, "events/s", ingest_rate, scoring_rate / ingest_rate
    )
    bench_line("scoring_event_to_score_p99", p99, "ms", i99, p99 / i99)


if __name__ == "__main__":
    asyncio.run(main())
