"""Bring a database and a NATS server to what the installed services need.

Used by `leadflow up` and `leadflow migrate`: the tenancy schema, every service schema
(platform messaging tables first, then the service's own migrations), and every producer's
stream, so consumers can bind before their producers first start.
"""

from __future__ import annotations

from collections.abc import Sequence

from leadflow_platform.db.migrations_runner import Migration, migrate
from leadflow_platform.db.pool import connect
from leadflow_platform.nats.bus import Bus, StreamLimits
from leadflow_platform.service import ServiceSpec, tenancy_migrations
from leadflow_platform.settings import Settings
from leadflow_platform.tenancy.store import SCHEMA as TENANCY_SCHEMA


async def migrate_all(database_url: str, services: Sequence[ServiceSpec]) -> list[Migration]:
    conn = await connect(database_url)
    try:
        applied = await migrate(conn, TENANCY_SCHEMA, tenancy_migrations())
        for spec in services:
            applied += await migrate(conn, spec.schema, spec.migrations())
    finally:
        await conn.close()
    return applied


async def ensure_streams(settings: Settings, services: Sequence[ServiceSpec]) -> list[str]:
    bus = await Bus.connect(
        settings.nats_url,
        name="leadflow-provision",
        namespace=settings.bus_namespace,
        limits=stream_limits(settings),
    )
    try:
        names = []
        for spec in services:
            if spec.stream is not None:
                await bus.ensure_stream(spec.stream)
                names.append(bus.stream_name(spec.stream.name))
        return names
    finally:
        await bus.drain()


def stream_limits(settings: Settings) -> StreamLimits:
    return StreamLimits(
        max_age_seconds=settings.stream_max_age_days * 86400,
        max_bytes=settings.stream_max_bytes,
        duplicate_window_seconds=settings.stream_duplicate_window_seconds,
        replicas=settings.stream_replicas,
    )


async def provision_all(settings: Settings, services: Sequence[ServiceSpec]) -> None:
    await migrate_all(settings.database_url, services)
    if settings.nats_url:
        await ensure_streams(settings, services)
