"""Composition root: the ingest service's servicer, outbox relay and retention job."""

from __future__ import annotations

from datetime import UTC, datetime

from leadflow.ingest.v1 import ingest_service_pb2_grpc
from leadflow_ingest.api.servicer import IngestServicer, RateLimiter
from leadflow_ingest.config import IngestSettings
from leadflow_ingest.geo import warm_up
from leadflow_ingest.jobs.retention import delete_expired
from leadflow_ingest.service import IngestService
from leadflow_platform.lifecycle import Runtime
from leadflow_platform.service import ServiceSpec


def build(runtime: Runtime) -> None:
    settings = IngestSettings.from_env()
    warm_up()
    service = IngestService(runtime, bus_message_bytes=settings.bus_message_bytes)
    runtime.add_servicer(
        ingest_service_pb2_grpc.add_IngestServiceServicer_to_server,
        IngestServicer(service, RateLimiter(runtime, settings.events_per_second)),
        "leadflow.ingest.v1.IngestService",
    )
    runtime.enable_outbox_relay()

    async def retention() -> None:
        await delete_expired(runtime.pool, runtime.tenants, datetime.now(UTC))

    runtime.add_periodic("retention", settings.retention_interval_seconds, retention)


SPEC = ServiceSpec(name="ingest", build=build, migrations_package="leadflow_ingest.db.migrations")
