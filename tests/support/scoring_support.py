"""Running ingest and scoring together and reading what scoring published, for tests and
benchmarks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import nats
from harness import auth, eventually, new_key, running

from leadflow.common.v1 import subject_pb2
from leadflow.ingest.v1 import ingest_service_pb2 as ingest_pb
from leadflow.ingest.v1 import ingest_service_pb2_grpc, profile_pb2
from leadflow.scoring.v1 import events_pb2 as scoring_events
from leadflow.scoring.v1 import scoring_service_pb2 as pb
from leadflow.scoring.v1 import scoring_service_pb2_grpc
from leadflow_ingest.app import SPEC as INGEST_SPEC
from leadflow_platform.grpc.client import open_channel
from leadflow_platform.lifecycle import Runtime
from leadflow_platform.nats import headers as h
from leadflow_platform.nats.streams import BusNames
from leadflow_platform.settings import Settings
from leadflow_scoring.app import SPEC as SCORING_SPEC

TENANT = "371minds"
SUBJECT_TYPES: dict[str, Any] = {
    "scoring.score.changed": scoring_events.ScoreChanged,
    "scoring.threshold.crossed": scoring_events.ThresholdCrossed,
    "scoring.stage.changed": scoring_events.StageChanged,
}


@dataclass
class Suite:
    """Ingest and scoring running in this process, with clients and an admin key."""

    settings: Settings
    ingest_runtime: Runtime
    scoring_runtimes: list[Runtime]
    ingest: ingest_service_pb2_grpc.IngestServiceStub
    scoring: scoring_service_pb2_grpc.ScoringServiceStub
    key: str

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return auth(self.key)

    @property
    def pool(self) -> Any:
        """A pool on the scoring schema."""
        return self.scoring_runtimes[0].pool

    async def track(self, *events: Any) -> ingest_pb.TrackBatchResponse:
        reply = await self.ingest.TrackBatch(
            ingest_pb.TrackBatchRequest(events=list(events)), metadata=self.metadata
        )
        assert reply.rejected == 0, [r.violations for r in reply.results]
        return reply

    async def identify(self, lead_id: str, **profile: Any) -> ingest_pb.IdentifyResponse:
        reply = await self.ingest.Identify(
            ingest_pb.IdentifyRequest(lead_id=lead_id, profile=profile_pb2.LeadProfile(**profile)),
            metadata=self.metadata,
        )
        return reply

    async def consent(self, lead_id: str, *, email: bool | None = None, sms: bool | None = None):
        def decision(granted: bool | None) -> profile_pb2.ConsentDecision:
            if granted is None:
                return profile_pb2.ConsentDecision()
            status = (
                profile_pb2.CONSENT_STATUS_GRANTED
                if granted
                else (profile_pb2.CONSENT_STATUS_WITHDRAWN)
            )
            return profile_pb2.ConsentDecision(status=status, source="test")

        return await self.ingest.SetConsent(
            ingest_pb.SetConsentRequest(
                subject=subject_pb2.SubjectRef(lead_id=lead_id),
                email=decision(email),
                sms=decision(sms),
            ),
            metadata=self.metadata,
        )

    async def erase(self, lead_id: str) -> ingest_pb.EraseSubjectResponse:
        return await self.ingest.EraseSubject(
            ingest_pb.EraseSubjectRequest(lead_id=lead_id, reason="test erasure"),
            metadata=self.metadata,
        )

    async def score(self, lead_id: str) -> Any:
        reply = await self.scoring.GetScore(
            pb.GetScoreRequest(lead_id=lead_id), metadata=self.metadata
        )
        return reply.score

    async def score_when(self, lead_id: str, check: Any, *, timeout: float = 15.0) -> Any:
        """The lead's score once `check(score)` holds (polls GetScore)."""

        async def ready() -> Any:
            try:
                score = await self.score(lead_id)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    return None
                raise
            return score if check(score) else None

        return await eventually(ready, timeout=timeout)

    async def applied(self) -> None:
        """Wait until scoring has applied every message ingest published (the consumer's
        acknowledgement floor reached the stream's end) and relayed what it published."""
        bus = self.ingest_runtime.bus

        async def caught_up() -> bool:
            # In this order: once ingest's outbox is empty its messages are in the stream;
            # once the ack floor passes them scoring has committed them, and what they
            # wrote to scoring's outbox is there to be relayed.
            ingest_pending = await self.ingest_runtime.pool.fetchval(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL"
            )
            if ingest_pending:
                return False
            stream = await bus.js.stream_info(bus.stream_name("INGEST"))
            info = await bus.js.consumer_info(
                bus.stream_name("INGEST"), bus.consumer_name("scoring-ingest-events")
            )
            if info.ack_floor.stream_seq < stream.state.last_seq:
                return False
            pending = await self.pool.fetchval(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL"
            )
            return pending == 0

        await eventually(caught_up, timeout=30)


@contextlib.asynccontextmanager
async def suite(
    settings: Settings, *, scoring_replicas: int = 1, scoring_settings: Settings | None = None
) -> AsyncIterator[Suite]:
    """Ingest and `scoring_replicas` scoring runtimes (with `scoring_settings` when given)."""
    key = await new_key(settings.database_url, TENANT, "admin")
    async with contextlib.AsyncExitStack() as stack:
        ingest_runtime = await stack.enter_async_context(running(INGEST_SPEC, settings))
        runtimes = [
            await stack.enter_async_context(running(SCORING_SPEC, scoring_settings or settings))
            for _ in range(scoring_replicas)
        ]
        ingest_channel = await stack.enter_async_context(
            open_channel(f"127.0.0.1:{ingest_runtime.port}")
        )
        scoring_channel = await stack.enter_async_context(
            open_channel(f"127.0.0.1:{runtimes[0].port}")
        )
        yield Suite(
            settings,
            ingest_runtime,
            runtimes,
            ingest_service_pb2_grpc.IngestServiceStub(ingest_channel),
            scoring_service_pb2_grpc.ScoringServiceStub(scoring_channel),
            key,
        )


async def published(settings: Settings, subject: str) -> list[tuple[str, Any]]:
    """Every message on a scoring subject in the SCORING stream, in stream order:
    (Nats-Msg-Id, decoded message)."""
    names = BusNames(settings.bus_namespace)
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        stream = names.stream("SCORING")
        info = await js.stream_info(stream)
        out: list[tuple[str, Any]] = []
        if info.state.messages == 0:
            return out
        for seq in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
            try:
                msg = await js.get_msg(stream, seq)
            except nats.js.errors.NotFoundError:
                continue
            if names.logical_subject(msg.subject or "") != subject:
                continue
            decoded = SUBJECT_TYPES[subject].FromString(msg.data or b"")
            out.append(((msg.headers or {}).get(h.MSG_ID, ""), decoded))
        return out
    finally:
        await nc.close()
