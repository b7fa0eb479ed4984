"""Composition root: the reporting servicer, the consumers that build the read model from
the events of ingest, scoring, attribution and routing, the outbox relay (alerts), and the
jobs: recent-session pruning, alert evaluation and retention."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime

from leadflow.reporting.v1 import reporting_service_pb2_grpc
from leadflow_platform.lifecycle import Runtime
from leadflow_platform.service import ServiceSpec
from leadflow_reporting.alerts import Alerts
from leadflow_reporting.api.servicer import ReportingServicer, Reports
from leadflow_reporting.business import BusinessReports
from leadflow_reporting.config import ReportingSettings
from leadflow_reporting.db import repository
from leadflow_reporting.events import consumers
from leadflow_reporting.funnels import Funnels
from leadflow_reporting.ingestion import Ingestion
from leadflow_reporting.journeys import Journeys
from leadflow_reporting.outcomes import Outcomes
from leadflow_reporting.paths import Paths
from leadflow_reporting.pruning import delete_expired
from leadflow_reporting.realtime import RealTime
from leadflow_reporting.retention import Retention

# How often sessions older than the activity window leave recent_sessions.
PRUNE_SECONDS = 60.0

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def _us(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000)


def build(runtime: Runtime, clock: Clock = system_clock) -> None:
    settings = ReportingSettings.from_env()
    business = BusinessReports.of(runtime)
    paths = Paths(runtime)
    settle_us = int(settings.alert_settle_seconds * 1_000_000)
    alerts = Alerts.of(runtime, business, paths, settle_us=settle_us)
    runtime.add_servicer(
        reporting_service_pb2_grpc.add_ReportingServiceServicer_to_server,
        ReportingServicer(
            Reports(
                Funnels(runtime),
                RealTime(runtime),
                paths,
                Journeys(runtime),
                Retention(runtime),
                business,
                alerts,
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
    runtime.enable_outbox_relay()

    async def evaluate_alerts() -> None:
        await alerts.evaluate(_us(clock()))

    async def retention() -> None:
        await delete_expired(runtime.pool, runtime.tenants, clock(), settings)

    runtime.add_periodic("reporting_alerts", settings.alert_interval_seconds, evaluate_alerts)
    runtime.add_periodic("reporting_retention", settings.retention_interval_seconds, retention)


def spec(clock: Clock = system_clock) -> ServiceSpec:
    """The service on a given clock (tests move time to close alert periods)."""
    return ServiceSpec(
        name="reporting",
        build=functools.partial(build, clock=clock),
        migrations_package="leadflow_reporting.db.migrations",
    )


SPEC = spec()
