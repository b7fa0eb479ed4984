"""Composition root: the routing servicer, the ingest and scoring consumers, the outbox
relay, the sink delivery worker, the SLA job, the nurture scheduler and the retention job."""

from __future__ import annotations

import functools

from leadflow.routing.v1 import routing_service_pb2_grpc
from leadflow_platform.lifecycle import Runtime
from leadflow_platform.service import ServiceSpec
from leadflow_routing.api.servicer import RoutingServicer
from leadflow_routing.config import RoutingSettings
from leadflow_routing.events import consumers
from leadflow_routing.jobs.nurture import emit_due_steps
from leadflow_routing.jobs.retention import delete_expired
from leadflow_routing.jobs.sla import handle_breaches
from leadflow_routing.service import Clock, RoutingService, system_clock
from leadflow_routing.sinks.delivery import DeliveryWorker
from leadflow_routing.sinks.secrets import SecretStore


def build(runtime: Runtime, clock: Clock = system_clock) -> None:
    settings = RoutingSettings.from_env()
    service = RoutingService(runtime, clock)
    runtime.add_servicer(
        routing_service_pb2_grpc.add_RoutingServiceServicer_to_server,
        RoutingServicer(service),
        "leadflow.routing.v1.RoutingService",
    )
    handlers = consumers.Consumers(service)
    runtime.add_consumer(
        runtime.consumer_spec(
            consumers.INGEST_DURABLE, consumers.INGEST_STREAM, consumers.INGEST_SUBJECTS
        ),
        handlers.ingest_handler(),
    )
    runtime.add_consumer(
        runtime.consumer_spec(
            consumers.SCORING_DURABLE, consumers.SCORING_STREAM, consumers.SCORING_SUBJECTS
        ),
        handlers.scoring_handler(),
    )
    runtime.enable_outbox_relay()
    worker = DeliveryWorker(
        runtime,
        SecretStore(settings.secrets_file),
        clock=clock,
        batch_size=settings.delivery_batch_size,
        poll_seconds=settings.delivery_poll_seconds,
    )
    runtime.add_task("sink-deliveries", worker.run)

    async def sla() -> None:
        await handle_breaches(service)

    async def nurture() -> None:
        await emit_due_steps(service)

    async def retention() -> None:
        await delete_expired(runtime.pool, runtime.tenants, clock())

    runtime.add_periodic("sla", settings.sla_interval_seconds, sla)
    runtime.add_periodic("nurture", settings.nurture_interval_seconds, nurture)
    runtime.add_periodic("retention", settings.retention_interval_seconds, retention)


def spec(clock: Clock = system_clock) -> ServiceSpec:
    """The service, on a given clock (tests move time to see SLAs breach and steps fall due)."""
    return ServiceSpec(
        name="routing",
        build=functools.partial(build, clock=clock),
        migrations_package="leadflow_routing.db.migrations",
    )


SPEC = spec()
