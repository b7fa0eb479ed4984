"""Composition root: the attribution servicer, its consumers of ingest's and scoring's
streams, the outbox relay, and its jobs (data-driven fits, retention)."""

from __future__ import annotations

from datetime import UTC, datetime

from leadflow.attribution.v1 import attribution_service_pb2_grpc
from leadflow_attribution.api.servicer import AttributionServicer
from leadflow_attribution.config import AttributionSettings
from leadflow_attribution.events import consumers
from leadflow_attribution.jobs.fitting import FitJob
from leadflow_attribution.jobs.retention import delete_expired
from leadflow_attribution.service import AttributionService
from leadflow_platform.lifecycle import Runtime
from leadflow_platform.service import ServiceSpec


def build(runtime: Runtime) -> None:
    settings = AttributionSettings.from_env()
    service = AttributionService(runtime)
    runtime.add_servicer(
        attribution_service_pb2_grpc.add_AttributionServiceServicer_to_server,
        AttributionServicer(service),
        "leadflow.attribution.v1.AttributionService",
    )
    handle = consumers.handler(service.ingestion)
    runtime.add_consumer(
        runtime.consumer_spec(
            consumers.INGEST_DURABLE, consumers.INGEST_STREAM, consumers.INGEST_SUBJECTS
        ),
        handle,
    )
    runtime.add_consumer(
        runtime.consumer_spec(
            consumers.SCORING_DURABLE, consumers.SCORING_STREAM, consumers.SCORING_SUBJECTS
        ),
        handle,
    )
    runtime.enable_outbox_relay()

    fitter = FitJob(
        lambda: runtime.pool,
        service.policy,
        interval_seconds=settings.fit_interval_seconds,
        refresh_seconds=settings.fit_refresh_seconds,
        max_age_seconds=settings.fit_max_age_seconds,
        lease_seconds=settings.fit_lease_seconds,
    )
    service.fitter = fitter
    runtime.add_task("attribution-fits", fitter.run)

    async def retention() -> None:
        await delete_expired(runtime.pool, runtime.tenants, datetime.now(UTC))

    runtime.add_periodic("retention", settings.retention_interval_seconds, retention)


SPEC = ServiceSpec(
    name="attribution", build=build, migrations_package="leadflow_attribution.db.migrations"
)
