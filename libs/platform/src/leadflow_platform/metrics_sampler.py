"""Reads the values the metrics gauges report (consumer lag, outbox backlog, dead letters)
from NATS and PostgreSQL, every LEADFLOW_METRICS_SAMPLE_SECONDS, in the background: a scrape
never waits on a query."""

from __future__ import annotations

import asyncpg

from leadflow_platform.metrics import SAMPLES, instruments
from leadflow_platform.nats.bus import Bus
from leadflow_platform.nats.consumer import Consumer


async def sample(pool: asyncpg.Pool, bus: Bus, consumers: list[Consumer]) -> None:
    instruments()  # the gauges exist before their first scrape
    for consumer in consumers:
        info = await bus.js.consumer_info(
            bus.stream_name(consumer.spec.stream), bus.consumer_name(consumer.spec.durable)
        )
        SAMPLES.consumer_pending[consumer.spec.durable] = int(info.num_pending or 0)
        SAMPLES.consumer_ack_pending[consumer.spec.durable] = int(info.num_ack_pending or 0)
    async with pool.acquire() as conn:
        # The partial index on unpublished rows keeps this cheap however large the outbox.
        row = await conn.fetchrow(
            "SELECT count(*) AS backlog,"
            " coalesce(extract(epoch FROM now() - min(created_at)), 0) AS oldest"
            " FROM outbox WHERE published_at IS NULL"
        )
        dead = await conn.fetchval("SELECT count(*) FROM dead_letters")
    SAMPLES.outbox_backlog = int(row["backlog"])
    SAMPLES.outbox_oldest_seconds = float(row["oldest"])
    SAMPLES.dead_letters = int(dead)
