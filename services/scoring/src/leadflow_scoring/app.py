"""Composition root: the scoring service's servicer, ingest consumer, outbox relay, and its
jobs (rescoring, decay, retention)."""

from __future__ import annotations

from datetime import UTC, datetime

from leadflow.scoring.v1 import scoring_service_pb2_grpc
from leadflow_platform.lifecycle import Runtime
from leadflow_platform.service import ServiceSpec
from leadflow_scoring.api.servicer import ScoringServicer
from leadflow_scoring.config import ScoringSettings
from leadflow_scoring.events import consumers
from leadflow_scoring.jobs.decay import rescore_due
from leadflow_scoring.jobs.rescoring import JobRunner
from leadflow_scoring.jobs.retention import delete_expired
from leadflow_scoring.service import ScoringService


def build(runtime: Runtime) -> None:
    settings = ScoringSettings.from_env()
    service = ScoringService(runtime)
    runtime.add_servicer(
        scoring_service_pb2_grpc.add_ScoringServiceServicer_to_server,
        ScoringServicer(service),
        "leadflow.scoring.v1.ScoringService",
    )
    runtime.add_consumer(
        runtime.consumer_spec(consumers.DURABLE, consumers.STREAM, consumers.SUBJECTS),
        consumers.handler(service.ingestion),
    )
    runtime.enable_outbox_relay()

    jobs = JobRunner(
        runtime,
        service.leads,
        chunk_size=settings.job_chunk_size,
        poll_seconds=settings.job_poll_seconds,
        lease_seconds=settings.job_lease_seconds,
    )
    service.jobs = jobs
    runtime.add_task("scoring-jobs", jobs.run)

    async def decay() -> None:
        await rescore_due(runtime, service.leads, datetime.now(UTC))

    async def retention() -> None:
        await delete_expired(runtime.pool, runtime.tenants, datetime.now(UTC))

    runtime.add_periodic("decay", settings.decay_interval_seconds, decay)
    runtime.add_periodic("retention", settings.retention_interval_seconds, retention)


SPEC = ServiceSpec(name="scoring", build=build, migrations_package="leadflow_scoring.db.migrations")
