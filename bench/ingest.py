"""`make bench-ingest`: events/s through ingest, end to end, against raw PostgreSQL inserts.

End to end: 200,000 events sent with TrackBatch (1,000 per call, from 8 concurrent
clients) over real gRPC from this process to the ingest service running in its own processes
(LEADFLOW_WORKERS=2, one per core, as it would be deployed on such a machine), timed until
every event is committed and its outbox message published to JetStream.

Baselines, measured in the same run on the same PostgreSQL:
- batched: asyncpg `INSERT ... SELECT unnest(...) ON CONFLICT DO NOTHING`, 1,000 rows per
  statement, one connection, of the same rows (the events table's columns with each event's
  bytes) into a bare table with only its primary key: no service, no validation, no outbox;
- single row: one autocommitted INSERT per event (the naive design), on 10,000 of the rows.
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
from _common import CpuMeter, Progress, bench_line, fresh_database, servers

from leadflow.common.v1 import event_type_pb2, marketing_pb2, subject_pb2
from leadflow.ingest.v1 import event_pb2, ingest_service_pb2, ingest_service_pb2_grpc
from leadflow_platform.embedded import free_port
from leadflow_platform.grpc.client import health_status, open_channel
from leadflow_platform.tenancy.keys import Scope
from leadflow_platform.tenancy.store import create_key

TOTAL = int(os.environ.get("BENCH_INGEST_EVENTS", "200000"))
BATCH = 1000
IN_FLIGHT = 8
# Ingest worker processes (LEADFLOW_WORKERS): one per core of a 2-core machine.
WORKERS = int(os.environ.get("BENCH_INGEST_WORKERS", "2"))
VISITORS = int(os.environ.get("BENCH_INGEST_VISITORS", "20000"))
SINGLE_ROW_SAMPLE = 10_000
BRANDS = ["modumind", "stacksense", "epicquest", "ikid", "vision2results"]
TYPES = ["page_view"] * 6 + ["click", "scroll", "email_opened", "form_submitted", "signup"]
SOURCES = [
    ("google", "cpc"),
    ("newsletter", "email"),
    ("twitter", "social"),
    ("partner", "referral"),
]


def generate(total: int, seed: int = 7) -> list[event_pb2.TrackEvent]:
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=2)

    # Each visitor keeps one address, as real visitors mostly do.
    def address(visitor: int) -> str:
        r = random.Random(visitor)
        return f"{r.randrange(1, 223)}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"

    events = []
    for i in range(total):
        visitor = rng.randrange(VISITORS)
        e = event_pb2.TrackEvent(
            event_id=f"bench-{i:07d}",
            brand_id=rng.choice(BRANDS),
            type=event_type_pb2.EventType.Value(f"EVENT_TYPE_{rng.choice(TYPES).upper()}"),
            subject=subject_pb2.SubjectRef(anonymous_id=f"visitor-{visitor}"),
            page_url=f"https://{rng.choice(BRANDS)}.example/pricing?ref={i % 50}",
            user_agent="Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15",
            ip=address(visitor),
        )
        e.occurred_at.FromDatetime(start + timedelta(milliseconds=i * 30))
        if i % 4 == 0:
            source, medium = rng.choice(SOURCES)
            e.marketing.CopyFrom(
                marketing_pb2.MarketingContext(source=source, medium=medium, campaign="fall-launch")
            )
        e.properties.update(
            {"plan": rng.choice(["free", "pro", "team"]), "scroll_depth": rng.random(),
             "experiment": {"key": "pricing-v2", "variant": rng.choice("AB")}}
        )  # fmt: skip
        events.append(e)
    return events


async def end_to_end(database_url: str, nats_url: str, events: list[event_pb2.TrackEvent]) -> float:
    conn = await asyncpg.connect(database_url)
    try:
        from leadflow_platform.db.migrations_runner import migrate
        from leadflow_platform.service import tenancy_migrations

        await migrate(conn, "tenancy", tenancy_migrations())
        key = (await create_key(conn, "bench", frozenset({Scope.INGEST}))).token
    finally:
        await conn.close()
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")},
        "LEADFLOW_DATABASE_URL": database_url,
        "LEADFLOW_NATS_URL": nats_url,
        "LEADFLOW_GRPC_HOST": "127.0.0.1",
        "LEADFLOW_GRPC_PORT": str(port),
        "LEADFLOW_METRICS_PORT": "0",
        "LEADFLOW_LOG_LEVEL": "warning",
        "LEADFLOW_TRACING": "false",
        "LEADFLOW_INGEST_EVENTS_PER_SECOND": "10000000",
        "LEADFLOW_WORKERS": str(WORKERS),
    }
    service = subprocess.Popen([sys.executable, "-m", "leadflow_ingest"], env=env)
    target = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while await health_status(target) != "SERVING":
            if time.monotonic() > deadline or service.poll() is not None:
                raise RuntimeError("ingest did not become healthy")
            await asyncio.sleep(0.2)
        batches = [
            ingest_service_pb2.TrackBatchRequest(events=events[i : i + BATCH])
            for i in range(0, len(events), BATCH)
        ]
        metadata = (("authorization", f"Bearer {key}"),)
        progress = Progress("ingest end to end", len(events), "events")
        sent = 0
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
        queue: asyncio.Queue[ingest_service_pb2.TrackBatchRequest] = asyncio.Queue()
        for batch in batches:
            queue.put_nowait(batch)

        async def sender() -> None:
            nonlocal sent
            # Each sender is a client with its own connection, as separate platforms would be.
            async with open_channel(target, own_connection=True) as channel:
                stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
                while not queue.empty():
                    batch = queue.get_nowait()
                    reply = await stub.TrackBatch(batch, metadata=metadata, timeout=60)
                    if reply.accepted != len(batch.events):
                        raise RuntimeError(f"not all accepted: {reply.rejected} rejected")
                    sent += len(batch.events)
                    progress.update(sent)

        cpu = CpuMeter()
        cpu.start()
        started = time.monotonic()
        await asyncio.gather(*(sender() for _ in range(IN_FLIGHT)))
        # Done when every event is committed and its message is in the stream.
        while True:
            stored = await pool.fetchval("SELECT count(*) FROM ingest.events")
            pending = await pool.fetchval(
                "SELECT count(*) FROM ingest.outbox WHERE published_at IS NULL"
            )
            if stored == len(events) and pending == 0:
                break
            await asyncio.sleep(0.02)
        elapsed = time.monotonic() - started
        cpu.stop()
        progress.update(sent, force=True)
        print(f"CPU per event: {cpu.per_item(len(events))}", file=sys.stderr, flush=True)
        await pool.close()
        return len(events) / elapsed
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(30)


def _rows(events: list[event_pb2.TrackEvent]) -> list[tuple]:
    """The events table's columns for each event (its serialized bytes as the record)."""
    now = datetime.now(UTC)
    return [
        (e.event_id, e.brand_id, "page_view", None, e.subject.anonymous_id, "s_0", now, now,
         "referral", "", e.SerializeToString())
        for e in events
    ]  # fmt: skip


BARE_TABLE = """CREATE TABLE {name} (
    tenant_id text NOT NULL, event_id text NOT NULL, brand_id text NOT NULL,
    event_type text NOT NULL, lead_id text, anonymous_id text, session_id text NOT NULL,
    occurred_at timestamptz NOT NULL, received_at timestamptz NOT NULL, channel text,
    flags text[] NOT NULL DEFAULT '{{}}', record bytea NOT NULL,
    PRIMARY KEY (tenant_id, event_id))"""


async def batched_baseline(database_url: str, events: list[event_pb2.TrackEvent]) -> float:
    rows = _rows(events)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(BARE_TABLE.format(name="raw_batched"))
        progress = Progress("baseline batched insert", len(rows), "rows")
        started = time.monotonic()
        for i in range(0, len(rows), BATCH):
            chunk = rows[i : i + BATCH]
            # The same statement shape as ingest's own insert (db/repository.py).
            await conn.execute(
                "INSERT INTO raw_batched (tenant_id, event_id, brand_id, event_type, lead_id,"
                " anonymous_id, session_id, occurred_at, received_at, channel, flags, record)"
                " SELECT 'bench', e.event_id, e.brand_id, e.event_type, e.lead_id,"
                " e.anonymous_id, e.session_id, e.occurred_at, e.received_at, e.channel,"
                " string_to_array(e.flags, ','), e.record"
                " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
                " $6::text[], $7::timestamptz[], $8::timestamptz[], $9::text[], $10::text[],"
                " $11::bytea[]) AS e(event_id, brand_id, event_type, lead_id, anonymous_id,"
                " session_id, occurred_at, received_at, channel, flags, record)"
                " ON CONFLICT DO NOTHING",
                *[list(column) for column in zip(*chunk, strict=True)],
            )
            progress.update(i + len(chunk))
        elapsed = time.monotonic() - started
    finally:
        await conn.close()
    return len(rows) / elapsed


async def single_row_baseline(database_url: str, events: list[event_pb2.TrackEvent]) -> float:
    rows = _rows(events[:SINGLE_ROW_SAMPLE])
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(BARE_TABLE.format(name="raw_single"))
        statement = await conn.prepare(
            "INSERT INTO raw_single (tenant_id, event_id, brand_id, event_type, lead_id,"
            " anonymous_id, session_id, occurred_at, received_at, channel, flags, record)"
            " VALUES ('bench', $1, $2, $3, $4, $5, $6, $7, $8, $9, string_to_array($10, ','), $11)"
            " ON CONFLICT DO NOTHING"
        )
        progress = Progress("baseline single-row insert", len(rows), "rows")
        started = time.monotonic()
        for i, row in enumerate(rows):
            await statement.fetch(*row)
            progress.update(i + 1)
        elapsed = time.monotonic() - started
    finally:
        await conn.close()
    return len(rows) / elapsed


async def main() -> None:
    print(f"generating {TOTAL:,} events...", file=sys.stderr, flush=True)
    events = generate(TOTAL)
    with servers() as s:
        e2e = await end_to_end(
            await fresh_database(s.admin_url, "bench_ingest"), s.nats_url, events
        )
        raw = await fresh_database(s.admin_url, "bench_raw")
        batched = await batched_baseline(raw, events)
        single = await single_row_baseline(raw, events)
    print(
        f"end to end {e2e:,.0f} events/s; raw batched insert {batched:,.0f} rows/s;"
        f" single-row insert {single:,.0f} rows/s",
        file=sys.stderr,
    )
    bench_line("ingest_end_to_end", e2e, "events/s", batched, e2e / batched)
    bench_line("ingest_vs_single_row", e2e, "events/s", single, e2e / single)


if __name__ == "__main__":
    asyncio.run(main())
