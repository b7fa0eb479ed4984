"""Waiting until every service has applied everything: no committed outbox row unpublished
in any schema, and no message pending or unacknowledged for any durable consumer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import nats

SCHEMAS = ("ingest", "scoring", "attribution", "routing", "reporting")


@dataclass(frozen=True)
class Backlog:
    outbox: int  # unpublished rows, all schemas
    pending: int  # messages not yet delivered or not yet acknowledged, all consumers

    @property
    def empty(self) -> bool:
        return self.outbox == 0 and self.pending == 0


async def backlog(pool: asyncpg.Pool, nc: nats.NATS) -> Backlog:
    outbox = 0
    async with pool.acquire() as conn:
        present = {
            r["schema_name"]
            for r in await conn.fetch(
                "SELECT table_schema AS schema_name FROM information_schema.tables"
                " WHERE table_name = 'outbox' AND table_schema = ANY($1::text[])",
                list(SCHEMAS),
            )
        }
        for schema in sorted(present):
            outbox += await conn.fetchval(
                f'SELECT count(*) FROM "{schema}".outbox WHERE published_at IS NULL'
            )
    js = nc.jetstream()
    pending = 0
    for stream in await js.streams_info():
        if stream.config.name is None:
            continue
        for consumer in await js.consumers_info(stream.config.name):
            pending += (consumer.num_pending or 0) + (consumer.num_ack_pending or 0)
    return Backlog(outbox, pending)


async def wait_until_caught_up(
    database_url: str,
    nats_url: str,
    *,
    timeout: float,
    on_progress: Callable[[Backlog], None] = lambda _: None,
) -> Backlog:
    """Poll until the backlog has been empty twice in a row (a consumer's output becomes
    another's input in between), or the timeout passes; returns the last backlog."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    nc = await nats.connect(nats_url)
    try:
        deadline = time.monotonic() + timeout
        quiet = 0
        while True:
            current = await backlog(pool, nc)
            on_progress(current)
            quiet = quiet + 1 if current.empty else 0
            if quiet >= 3 or time.monotonic() > deadline:
                return current
            await asyncio.sleep(0.5)
    finally:
        await nc.close()
        await pool.close()
