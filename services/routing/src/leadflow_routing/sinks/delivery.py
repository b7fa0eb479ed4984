"""The delivery worker: drains the deliveries table (written in each decision's transaction,
so nothing routed is lost), sends each to its sink, and retries failures with exponential
backoff and full jitter until the sink's max_attempts, then dead-letters the delivery with the
last reason. Deliveries are leased (committed) before the HTTP call, so replicas never send
the same one at once and a crashed worker's lease simply expires; receivers get the same
Idempotency-Key on every attempt. Each attempt is a span in the trace of the decision that
wrote the delivery (its traceparent is stored with it), and the request carries it on."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

import asyncpg
import httpx
from opentelemetry import trace

from leadflow.routing.v1 import routing_config_pb2 as cpb
from leadflow_platform import metrics
from leadflow_platform.lifecycle import ServiceContext
from leadflow_platform.logging import get_logger
from leadflow_platform.nats.headers import context_from_traceparent
from leadflow_platform.telemetry import tracer
from leadflow_routing.api.mapping import sink_from_proto
from leadflow_routing.db import repository as repo
from leadflow_routing.domain.backoff import exhausted, next_delay
from leadflow_routing.domain.config import SinkKind
from leadflow_routing.sinks.secrets import SecretStore
from leadflow_routing.sinks.senders import SendFailed, send_mautic, send_webhook

log = get_logger(__name__)
CHANNEL = "leadflow_routing_deliveries"
_LEASE_MARGIN_SECONDS = 30.0


class DeliveryWorker:
    def __init__(
        self,
        context: ServiceContext,
        secrets: SecretStore,
        *,
        clock: Callable[[], datetime],
        batch_size: int = 50,
        poll_seconds: float = 1.0,
    ) -> None:
        self._context = context
        self._secrets = secrets
        self._clock = clock
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._wake = asyncio.Event()

    @property
    def pool(self) -> asyncpg.Pool:
        return self._context.pool

    def now(self) -> datetime:
        return self._clock()

    async def run(self, stop: asyncio.Event) -> None:
        listener = await self.pool.acquire()

        def wake(*_: object) -> None:
            self._wake.set()

        await listener.add_listener(CHANNEL, wake)
        try:
            async with httpx.AsyncClient() as client:
                while not stop.is_set():
                    try:
                        sent = await self.deliver_once(client)
                    except (OSError, asyncpg.PostgresConnectionError) as exc:
                        log.warning("delivery_retry", error=str(exc))
                        sent = 0
                    if sent >= self._batch_size:
                        continue
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(_first(stop, self._wake), self._poll_seconds)
        finally:
            with contextlib.suppress(Exception):
                await listener.remove_listener(CHANNEL, wake)
            await self.pool.release(listener)

    async def deliver_once(self, client: httpx.AsyncClient) -> int:
        """Sends what is due now; returns how many deliveries were attempted."""
        lease = 60.0 + _LEASE_MARGIN_SECONDS
        async with self.pool.acquire() as conn:
            rows = await repo.lease_deliveries(conn, self.now(), lease, self._batch_size)
        if rows:
            await asyncio.gather(*(self._attempt(client, row) for row in rows))
        return len(rows)

    async def _attempt(self, client: httpx.AsyncClient, row: asyncpg.Record) -> None:
        sink = sink_from_proto(cpb.Sink.FromString(row["sink"]))
        attempts = row["attempts"] + 1
        error = ""
        with tracer().start_as_current_span(
            f"{sink.kind.value} delivery",
            context=context_from_traceparent(row["traceparent"]),
            kind=trace.SpanKind.CLIENT,
            attributes={
                "leadflow.tenant_id": row["tenant_id"],
                "leadflow.delivery_id": row["delivery_id"],
                "leadflow.brand_id": row["brand_id"],
                "leadflow.sink": sink.kind.value,
                "leadflow.delivery.attempt": attempts,
            },
        ) as span:
            try:
                timeout = sink.timeout.total_seconds()
                if sink.kind is SinkKind.WEBHOOK and sink.webhook is not None:
                    await send_webhook(
                        client,
                        sink.webhook,
                        timeout,
                        self._secrets,
                        row["delivery_id"],
                        row["body"],
                    )
                elif sink.kind is SinkKind.MAUTIC and sink.mautic is not None:
                    await send_mautic(client, sink.mautic, timeout, self._secrets, row["body"])
            except SendFailed as exc:
                error = str(exc)
                span.set_status(trace.Status(trace.StatusCode.ERROR, error))
        at = self.now()
        if not error:
            state, next_at = "delivered", None
        elif exhausted(sink.retry, attempts):
            state, next_at = "dead", None
        else:
            state, next_at = "pending", at + next_delay(sink.retry, attempts)
        async with self.pool.acquire() as conn:
            await repo.finish_delivery(
                conn,
                row["tenant_id"],
                row["delivery_id"],
                state=state,
                attempts=attempts,
                next_attempt_at=next_at,
                error=error,
                at=at,
            )
        fields = {
            "tenant_id": row["tenant_id"],
            "delivery_id": row["delivery_id"],
            "brand": row["brand_id"],
            "attempts": attempts,
        }
        if state == "delivered":
            log.info("sink_delivered", **fields)
        elif state == "dead":
            log.error("sink_dead_lettered", reason=error, **fields)
            metrics.record_sink_failure(sink.kind.value, final=True)
        else:
            log.warning("sink_delivery_failed", reason=error, retry_at=next_at, **fields)
            metrics.record_sink_failure(sink.kind.value, final=False)


async def _first(*events: asyncio.Event) -> None:
    tasks = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
