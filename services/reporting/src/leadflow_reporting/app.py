"""Composition root: the reporting servicer and the consumer that builds the read model from
ingest's events."""

from __future__ import annotations

from leadflow.reporting.v1 import reporting_service_pb2_grpc
from leadflow_platform.lifecycle import Runtime
from leadflow_platform.service import ServiceSpec
from leadflow_reporting.api.servicer import ReportingServicer
from leadflow_reporting.events import consumers
from leadflow_reporting.funnels import Funnels
from leadflow_reporting.ingestion import Ingestion


def build(runtime: Runtime) -> None:
    runtime.add_servicer(
        reporting_service_pb2_grpc.add_ReportingServiceServicer_to_server,
        ReportingServicer(Funnels(runtime)),
        "leadflow.reporting.v1.ReportingService",
    )
    runtime.add_consumer(
        runtime.consumer_spec(consumers.DURABLE, consumers.STREAM, consumers.SUBJECTS),
        consumers.handler(Ingestion()),
    )


SPEC = ServiceSpec(
    name="reporting", build=build, migrations_package="leadflow_reporting.db.migrations"
)
