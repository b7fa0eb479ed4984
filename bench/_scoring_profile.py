"""Scoring's ingest handler driven in this process, for profiling (not a `make` target).

`.venv/bin/python bench/_scoring_profile.py` applies bench-scoring's kind of events straight
to scoring's consumer handler (no ingest, no NATS, no relay): PROFILE_WARM messages first
(the leads exist), then PROFILE_MESSAGES messages of PROFILE_EVENTS events each, applied
PROFILE_BATCH messages per transaction as the consumer's batches are. It prints wall and CPU
time per event, the time spent in each kind of SQL statement, and with PROFILE=1 the
cProfile of the measured part. Servers as for every benchmark (bench/_common.py).
"""

from __future__ import annotations

import asyncio
import collections
import cProfile
import os
import pstats
import random
import sys
import time
from datetime import UTC, datetime, timedelta

from _common import fresh_database, servers

from leadflow.common.v1 import event_type_pb2
from leadflow.ingest.v1 import events_pb2
from leadflow_platform.db.migrations_runner import migrate
from leadflow_platform.db.pool import create_pool
from leadflow_platform.nats import Delivery
from leadflow_scoring.app import SPEC
from leadflow_scoring.erasure import ErasedSubjects
from leadflow_scoring.events import consumers
from leadflow_scoring.ingestion import Ingestion
from leadflow_scoring.leads import Leads
from leadflow_scoring.model_store import ModelStore

LEADS = int(os.environ.get("PROFILE_LEADS", "20000"))
EVENTS = int(os.environ.get("PROFILE_EVENTS", "50"))
MESSAGES = int(os.environ.get("PROFILE_MESSAGES", "200"))
WARM = int(os.environ.get("PROFILE_WARM", "400"))
BATCH = int(os.environ.get("PROFILE_BATCH", "20"))
TENANT = "bench"
TYPES = (
    ["page_view"] * 10
    + ["click", "scroll", "email_sent", "email_opened", "email_clicked", "content_downloaded"]
    + ["form_submitted", "email_replied", "meeting_scheduled", "purchase"]
)


def messages(count: int, seed: int, start: datetime) -> list[events_pb2.EventsRecorded]:
    rng = random.Random(seed)
    out = []
    for m in range(count):
        message = events_pb2.EventsRecorded()
        message.metadata.event_id = f"m{seed}-{m}"
        message.metadata.tenant_id = TENANT
        for i in range(EVENTS):
            n = m * EVENTS + i
            lead = rng.randrange(LEADS)
            e = message.events.add(event_id=f"e{seed}-{n}", brand_id="modumind")
            e.type = event_type_pb2.EventType.Value(f"EVENT_TYPE_{rng.choice(TYPES).upper()}")
            e.subject.lead_id = f"lead-{lead}"
            e.occurred_at.FromDatetime(start + timedelta(milliseconds=n * 10))
            if n % 4 == 0:
                e.marketing.channel = "paid_search"
        out.append(message)
    return out


async def main() -> None:
    with servers() as s:
        url = await fresh_database(s.admin_url, "profile_scoring")
        pool = await create_pool(url, schema=SPEC.schema, application_name="profile")
        async with pool.acquire() as conn:
            await migrate(conn, SPEC.schema, SPEC.migrations())
            # A fresh table's first plans assume it is tiny until autovacuum analyzes it.
            await conn.execute("ANALYZE")
        handler = consumers.handler(Ingestion(Leads(ModelStore()), ErasedSubjects()))
        sequence = 0

        async def apply(batch: list[events_pb2.EventsRecorded]) -> None:
            nonlocal sequence
            deliveries = []
            for m in batch:
                sequence += 1
                deliveries.append(
                    Delivery("ingest.event.recorded", m, m.metadata.event_id, TENANT, sequence, 1)
                )
            async with pool.acquire() as conn, conn.transaction():
                await handler.apply(conn, deliveries)

        start = datetime.now(UTC) - timedelta(hours=2)
        for m in messages(WARM, 1, start):
            await apply([m])
        async with pool.acquire() as conn:
            await conn.execute("ANALYZE")
        timed: collections.Counter[str] = collections.Counter()
        counts: collections.Counter[str] = collections.Counter()

        def log_query(record: object) -> None:
            key = " ".join(str(getattr(record, "query", "")).split()[:5])[:70]
            timed[key] += float(getattr(record, "elapsed", 0.0))
            counts[key] += 1

        holders = [await pool.acquire() for _ in range(pool.get_size())]
        for conn in holders:
            conn.add_query_logger(log_query)
            await pool.release(conn)
        hot = messages(MESSAGES, 2, start + timedelta(hours=1))
        profile = cProfile.Profile() if os.environ.get("PROFILE") else None
        wall, cpu = time.perf_counter(), time.process_time()
        if profile:
            profile.enable()
        for i in range(0, len(hot), BATCH):
            await apply(hot[i : i + BATCH])
        if profile:
            profile.disable()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        await pool.close()
    n = MESSAGES * EVENTS
    print(
        f"{n:,} events in messages of {EVENTS}, {BATCH} per transaction: wall {wall:.2f} s"
        f" ({n / wall:,.0f} events/s), CPU {cpu / n * 1e6:,.0f} us per event",
        file=sys.stderr,
    )
    for key, seconds in timed.most_common(12):
        print(f"  {seconds * 1000:9.1f} ms {counts[key]:6d}x  {key}", file=sys.stderr)
    if profile:
        pstats.Stats(profile, stream=sys.stderr).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    asyncio.run(main())
