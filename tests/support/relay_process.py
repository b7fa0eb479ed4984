"""Run one outbox relay in its own process, until it is killed (kill -9 tests)."""

from __future__ import annotations

import asyncio
import sys

from leadflow_platform.db.pool import create_pool
from leadflow_platform.logging import configure_logging
from leadflow_platform.nats.bus import Bus, StreamLimits
from leadflow_platform.nats.outbox import OutboxRelay


async def main(database_url: str, nats_url: str, namespace: str, batch: int) -> None:
    pool = await create_pool(database_url, schema="probe", application_name="relay-test")
    bus = await Bus.connect(
        nats_url, name="relay-test", namespace=namespace,
        limits=StreamLimits(duplicate_window_seconds=0.1),
    )  # fmt: skip
    relay = OutboxRelay(pool, bus, schema="probe", batch_size=batch, poll_seconds=0.05)
    print("relay_started", flush=True)
    await relay.run(asyncio.Event())


if __name__ == "__main__":
    configure_logging(level="warning", fmt="json")
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
