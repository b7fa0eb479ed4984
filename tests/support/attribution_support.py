"""Running ingest, scoring and attribution together in this process, and reading what
attribution stored and published, for tests and benchmarks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import nats
from harness import auth, eventually, new_key, running

from leadflow.attribution.v1 import attribution_service_pb2 as pb
from leadflow.attribution.v1 import attribution_service_pb2_grpc
from leadflow.attribution.v1 import events_pb2 as attribution_events
from leadflow.ingest.v1 import ingest_service_pb2 as ingest_pb
from leadflow.ingest.v1 import ingest_service_pb2_grpc
from leadflow.scoring.v1 import scoring_service_pb2_grpc
from leadflow_attribution.app import SPEC as ATTRIBUTION_SPEC
from leadflow_ingest.app import SPEC as INGEST_SPEC
from leadflow_platform.grpc.client import open_channel
from leadflow_platform.lifecycle import Runtime
from leadflow_platform.nats import headers as h
from leadflow_platform.nats.streams import BusNames
from leadflow_platform.settings import Settings
from leadflow_scoring.app import SPEC as SCORING_SPEC

TENANT = "371minds"
CONSUMERS = (
    ("INGEST", "attribution-ingest-events"),
    ("SCORING", "attribution-scoring-stages"),
    ("INGEST", "scoring-ingest-events"),
)


@dataclass
class Suite:
    """Ingest, scoring and attribution running in this process, with clients and a key."""

    settings: Settings
    ingest_runtime: Runtime
    scoring_runtime: Runtime
    attribution_runtimes: list[Runtime]
    ingest: ingest_service_pb2_grpc.IngestServiceStub
    scoring: scoring_service_pb2_grpc.ScoringServiceStub
    attribution: attribution_service_pb2_grpc.AttributionServiceStub
    key: str

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return auth(self.key)

    @property
    def attribution_runtime(self) -> Runtime:
        """The first attribution replica (the one `attribution` calls)."""
        return self.attribution_runtimes[0]

    @property
    def pool(self) -> Any:
        """A pool on the attribution schema."""
        return self.attribution_runtime.pool

    async def track(self, *events: Any) -> ingest_pb.TrackBatchResponse:
        reply = await self.ingest.TrackBatch(
            ingest_pb.TrackBatchRequest(events=list(events)), metadata=self.metadata
        )
        assert reply.rejected == 0, [r.violations for r in reply.results]
        return reply

    async def attribution_of(self, conversion_id: str, **fields: Any) -> pb.GetAttributionResponse:
        return await self.attribution.GetAttribution(
            pb.GetAttributionRequest(conversion_id=conversion_id, **fields),
            metadata=self.metadata,
        )

    async def applied(self) -> None:
        """Wait until every consumer of the suite has applied every message on its stream
        and every outbox is relayed, twice in a row (scoring's stage changes feed
        attribution after scoring has read ingest)."""
        runtimes = (self.ingest_runtime, self.scoring_runtime, *self.attribution_runtimes)
        bus = self.ingest_runtime.bus

        async def caught_up() -> bool:
            for runtime in runtimes:
                pending = await runtime.pool.fetchval(
                    "SELECT count(*) FROM outbox WHERE published_at IS NULL"
                )
                if pending:
                    return False
            for stream, durable in CONSUMERS:
                # Filtered consumers: nothing left to deliver and nothing unacknowledged.
                consumer = await bus.js.consumer_info(
                    bus.stream_name(stream), bus.consumer_name(durable)
                )
                if consumer.num_pending or consumer.num_ack_pending:
                    return False
            return True

        for _ in range(2):
            await eventually(caught_up, timeout=30)


@contextlib.asynccontextmanager
async def suite(
    settings: Settings,
    *,
    attribution_replicas: int = 1,
    attribution_settings: Settings | None = None,
) -> AsyncIterator[Suite]:
    """Ingest, scoring and `attribution_replicas` attribution runtimes (each its own
    process-like Runtime on the same database and bus; `attribution_settings` when given)."""
    key = await new_key(settings.database_url, TENANT, "admin")
    async with contextlib.AsyncExitStack() as stack:
        ingest_runtime = await stack.enter_async_context(running(INGEST_SPEC, settings))
        scoring_runtime = await stack.enter_async_context(running(SCORING_SPEC, settings))
        attribution_runtimes = [
            await stack.enter_async_context(
                running(ATTRIBUTION_SPEC, attribution_settings or settings)
            )
            for _ in range(attribution_replicas)
        ]
        channels = [
            await stack.enter_async_context(open_channel(f"127.0.0.1:{runtime.port}"))
            for runtime in (ingest_runtime, scoring_runtime, attribution_runtimes[0])
        ]
        yield Suite(
            settings,
            ingest_runtime,
            scoring_runtime,
            attribution_runtimes,
            ingest_service_pb2_grpc.IngestServiceStub(channels[0]),
            scoring_service_pb2_grpc.ScoringServiceStub(channels[1]),
            attribution_service_pb2_grpc.AttributionServiceStub(channels[2]),
            key,
        )


async def published(settings: Settings) -> list[tuple[str, Any]]:
    """Every attribution.conversion.attributed in the ATTRIBUTION stream, in stream order:
    (Nats-Msg-Id, decoded message)."""
    names = BusNames(settings.bus_namespace)
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        stream = names.stream("ATTRIBUTION")
        info = await js.stream_info(stream)
        out: list[tuple[str, Any]] = []
        for seq in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
            try:
                msg = await js.get_msg(stream, seq)
            except nats.js.errors.NotFoundError:
                continue
            if names.logical_subject(msg.subject or "") != "attribution.conversion.attributed":
                continue
            decoded = attribution_events.ConversionAttributed.FromString(msg.data or b"")
            out.append(((msg.headers or {}).get(h.MSG_ID, ""), decoded))
        return out
    finally:
        await nc.close()
