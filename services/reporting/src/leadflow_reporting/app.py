"""Composition root: the reporting servicer and the consumers that build the read model from
the events of ingest, scoring, attribution and routing."""

from __future__ import annotations

from leadflow.reporting.v1 import reporting_service_pb2_grpc
from leadflow_platform.lifecycle import Runtime
from leadflow_platform.service import ServiceSpec
from leadflow_reporting.api.servicer import ReportingServicer, Reports
from leadflow_reporting.business import BusinessReports
from leadflow_reporting.db import repository
from leadflow_reporting.events import consumers
from leadflow_reporting.funnels import Funnels
from leadflow_reporting.ingestion import Ingestion
from leadflow_reporting.journeys import Journeys
from leadflow_reporting.outcomes import Outcomes
from leadflow_reporting.paths import Paths
from leadflow_reporting.realtime import RealTime
from leadflow_reporting.retention import Retention

# How often sessions older than the activity window leave recent_sessions.
PRUNE_SECONDS = 60.0


def build(runtime: Runtime) -> None:
    runtime.add_servicer(
        reporting_service_pb2_grpc.add_ReportingServiceServicer_to_server,
        ReportingServicer(
            Reports(
                Funnels(runtime),
                RealTime(runtime),
                Paths(runtime),
                Journeys(runtime),
                Retention(runtime),
                BusinessReports.of(runtime),
            )
        ),
        "leadflow.reporting.v1.ReportingService",
    )
    runtime.add_consumer(
        runtime.consumer_spec(consumers.DURABLE, consumers.STREAM, consumers.SUBJECTS),
        consumers.handler(Ingestion()),
    )
    outcomes = consumers.outcome_handler(Outcomes())
    for durable, stream, subjects in consumers.OUTCOME_CONSUMERS:
        runtime.add_consumer(runtime.consumer_spec(durable, stream, subjects), outcomes)

    async def prune() -> None:
        async with runtime.pool.acquire() as conn:
            await repository.prune_recent_sessions(conn)

    runtime.add_periodic("reporting_prune_recent_sessions", PRUNE_SECONDS, prune)


SPEC = ServiceSpec(
    name="reporting", build=build, migrations_package="leadflow_reporting.db.migrations"
)
