"""Durable pull consumers: each message applied once, acked after commit, poison set aside.

For every message the wrapper
- continues the producer's trace (a CONSUMER span whose parent is the publish span) and binds
  the log context (subject, stream sequence, delivery count, message id, tenant);
- opens a transaction, records the message id in the consumer's inbox and runs the handler
  on the same connection: a redelivered message finds its id and is only acknowledged;
- acknowledges after the commit, never before;
- on `PoisonMessage` (undecodable, or a handler that says it can never succeed) writes the
  message to the dead-letter table with the reason and terminates it;
- on any other error negatively acknowledges with a growing delay, and on the last allowed
  delivery dead-letters it instead.
A message whose last delivery dies with its process (no code left to dead-letter it) is
caught from JetStream's MAX_DELIVERIES advisory and dead-lettered from the stream.

A `BatchHandler` applies the messages of one fetch together: in stream order, up to its
`max_bytes` of payload per transaction, one inbox statement and one commit for all of them.
The batch has a CONSUMER span of its own (a new trace, linked to each producer's span; the
database work is under it), and each message a CONSUMER span in its producer's trace (linked
to the batch's), which `Delivery.trace_context` carries to the handler: the events a message
causes name it as their cause (`OutboxMessage.trace_context`), so every trace goes on past
the batch. If such a transaction fails, its messages are applied again one by one as above,
so one bad message never holds back the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import asyncpg
import structlog
from google.protobuf.message import DecodeError, Message
from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import FetchTimeoutError
from opentelemetry import context as otel_context
from opentelemetry import trace

from leadflow_platform import metrics
from leadflow_platform.logging import get_logger
from leadflow_platform.nats import headers as h
from leadflow_platform.nats.bus import Bus
from leadflow_platform.nats.registry import UnknownSubject, message_type
from leadflow_platform.telemetry import tracer

log = get_logger(__name__)


class PoisonMessage(Exception):
    """This message can never be applied; dead-letter it now instead of retrying."""


class RetryLater(Exception):
    """Not now (a dependency is missing or busy); retry after the backoff delay."""


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable pull consumer: `<consumer>-<stream>-<purpose>` by convention."""

    durable: str
    stream: str
    filter_subjects: tuple[str, ...]
    max_deliver: int = 5
    backoff_seconds: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0)
    ack_wait_seconds: float = 30.0
    batch_size: int = 100
    fetch_timeout_seconds: float = 1.0
    max_ack_pending: int = 10_000

    def delay_after(self, deliveries: int) -> float:
        index = min(max(deliveries, 1), len(self.backoff_seconds)) - 1
        return self.backoff_seconds[index]


@dataclass(frozen=True)
class Delivery:
    """One message as a handler sees it."""

    subject: str
    message: Message
    message_id: str
    tenant_id: str
    stream_sequence: int
    deliveries: int
    headers: Mapping[str, str] = field(default_factory=dict)
    # In a batch: the context of this message's own CONSUMER span, for what the handler
    # does on its behalf (events it causes, work done for it alone). None: the current one.
    trace_context: otel_context.Context | None = None


Handler = Callable[[asyncpg.Connection, Delivery], Awaitable[None]]


@dataclass(frozen=True)
class BatchHandler:
    """A handler that applies several messages in one transaction (those not applied
    before, in stream order). It is also a Handler: one message is a batch of one."""

    apply: Callable[[asyncpg.Connection, Sequence[Delivery]], Awaitable[None]]
    max_bytes: int = 1 << 20  # payload bytes per transaction (a larger message goes alone)

    async def __call__(self, conn: asyncpg.Connection, delivery: Delivery) -> None:
        await self.apply(conn, [delivery])


class Consumer:
    def __init__(self, spec: ConsumerSpec, handler: Handler, *, pool: asyncpg.Pool, bus: Bus):
        self.spec = spec
        self._handler = handler
        self._pool = pool
        self._bus = bus
        self._wire_name = bus.consumer_name(spec.durable)
        # nats-server before 2.10 ignores a consumer's list of filter subjects and delivers
        # the whole stream: what the consumer did not ask for is acknowledged and skipped.
        wanted = [bus.subject(s) for s in spec.filter_subjects]
        exact = not any("*" in s or ">" in s for s in wanted)
        self._wanted = frozenset(wanted) if exact else frozenset()
        self.applied = 0  # messages this process applied (for tests and metrics)

    async def provision(self) -> None:
        await self._bus.ensure_consumer(
            stream=self.spec.stream,
            durable=self.spec.durable,
            filter_subjects=self.spec.filter_subjects,
            max_deliver=self.spec.max_deliver,
            ack_wait_seconds=self.spec.ack_wait_seconds,
            max_ack_pending=self.spec.max_ack_pending,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Pull and process until `stop` is set; the message in hand is always finished."""
        stream = self._bus.stream_name(self.spec.stream)
        sub = await self._bus.js.pull_subscribe_bind(
            durable=self._wire_name, stream=stream, name=self._wire_name
        )
        advisory = await self._bus.nc.subscribe(
            f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{self._wire_name}",
            queue=f"{self._wire_name}-advisories",
            cb=self._on_max_deliveries,
        )
        try:
            while not stop.is_set():
                try:
                    messages = await sub.fetch(
                        self.spec.batch_size, timeout=self.spec.fetch_timeout_seconds
                    )
                except (FetchTimeoutError, NatsTimeoutError, TimeoutError):
                    continue
                except ConnectionClosedError:
                    if stop.is_set():
                        break
                    raise
                messages = await self._without_unwanted(messages)
                if isinstance(self._handler, BatchHandler) and len(messages) > 1:
                    await self._process_batches(messages, self._handler, stop)
                    continue
                for index, msg in enumerate(messages):
                    if stop.is_set():
                        # Hand the rest back now rather than after ack_wait.
                        for rest in messages[index:]:
                            with contextlib.suppress(Exception):
                                await rest.nak()
                        break
                    await self.process(msg)
        finally:
            with contextlib.suppress(Exception):
                await advisory.unsubscribe()
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _without_unwanted(self, messages: list[Msg]) -> list[Msg]:
        if not self._wanted:
            return messages
        kept = []
        for msg in messages:
            if msg.subject in self._wanted:
                kept.append(msg)
            else:
                await msg.ack()
                metrics.record_message(
                    self.spec.durable, self._bus.logical_subject(msg.subject), "skipped"
                )
        return kept

    async def process(self, msg: Msg) -> None:
        headers = dict(msg.headers or {})
        meta = msg.metadata
        subject = self._bus.logical_subject(msg.subject)
        message_id = headers.get(h.MSG_ID) or f"{self.spec.stream}:{meta.sequence.stream}"
        tenant_id = headers.get(h.TENANT, "")
        deliveries = meta.num_delivered
        with (
            tracer().start_as_current_span(
                f"{subject} process",
                context=h.context_from(headers),
                kind=trace.SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "nats",
                    "messaging.destination.name": subject,
                    "messaging.message.id": message_id,
                    "messaging.consumer.group.name": self.spec.durable,
                    "messaging.nats.stream_sequence": meta.sequence.stream,
                    "messaging.nats.delivery_count": deliveries,
                },
            ) as span,
            structlog.contextvars.bound_contextvars(
                consumer=self.spec.durable,
                subject=subject,
                stream_sequence=meta.sequence.stream,
                deliveries=deliveries,
                message_id=message_id,
                tenant_id=tenant_id,
            ),
        ):
            try:
                delivery = Delivery(
                    subject=subject,
                    message=_decode(subject, msg.data),
                    message_id=message_id,
                    tenant_id=tenant_id,
                    stream_sequence=meta.sequence.stream,
                    deliveries=deliveries,
                    headers=headers,
                )
                applied = await self._apply(delivery)
            except PoisonMessage as exc:
                span.record_exception(exc)
                await self._dead_letter(msg, subject, message_id, tenant_id, str(exc))
                return
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
                if deliveries >= self.spec.max_deliver:
                    reason = f"failed {deliveries} deliveries; last error: {exc!r}"
                    await self._dead_letter(msg, subject, message_id, tenant_id, reason)
                else:
                    delay = self.spec.delay_after(deliveries)
                    log.warning("message_retry", error=repr(exc), retry_in=delay)
                    await msg.nak(delay=delay)
                    metrics.record_message(self.spec.durable, subject, "retried")
                return
            await msg.ack()
            if applied:
                self.applied += 1
            metrics.record_message(
                self.spec.durable, subject, "applied" if applied else "duplicate"
            )

    async def _process_batches(
        self, messages: list[Msg], handler: BatchHandler, stop: asyncio.Event
    ) -> None:
        group: list[tuple[Msg, Delivery]] = []
        size = 0
        for index, msg in enumerate(messages):
            if stop.is_set():
                for rest in messages[index:]:
                    with contextlib.suppress(Exception):
                        await rest.nak()
                break
            try:
                delivery = self._delivery(msg)
            except PoisonMessage:
                await self.process(msg)  # dead-lettered; it was never going to apply
                continue
            if group and size + len(msg.data) > handler.max_bytes:
                await self._process_group(group, handler)
                group, size = [], 0
            group.append((msg, delivery))
            size += len(msg.data)
        if group and not stop.is_set():
            await self._process_group(group, handler)
        elif group:
            for msg, _ in group:
                with contextlib.suppress(Exception):
                    await msg.nak()

    async def _process_group(
        self, group: list[tuple[Msg, Delivery]], handler: BatchHandler
    ) -> None:
        """Apply the group in one transaction and ack it; on failure, each message alone."""
        if len(group) == 1:
            await self.process(group[0][0])
            return
        deliveries = [d for _, d in group]
        parents = [h.context_from(d.headers) for d in deliveries]
        producers = [trace.get_current_span(p).get_span_context() for p in parents]
        links = [trace.Link(c) for c in producers if c.is_valid]
        with (
            tracer().start_as_current_span(
                f"{deliveries[0].subject} process",
                kind=trace.SpanKind.CONSUMER,
                links=links,
                attributes={
                    "messaging.system": "nats",
                    "messaging.consumer.group.name": self.spec.durable,
                    "messaging.batch.message_count": len(deliveries),
                },
            ) as span,
            structlog.contextvars.bound_contextvars(
                consumer=self.spec.durable,
                batch_size=len(deliveries),
                first_stream_sequence=deliveries[0].stream_sequence,
            ),
        ):
            try:
                with message_spans(deliveries, self.spec.durable, parents) as traced:
                    applied = await self._apply_batch(traced, handler)
            except Exception as exc:
                span.record_exception(exc)
                log.warning("batch_failed_applying_one_by_one", error=repr(exc))
                for msg, _ in group:
                    await self.process(msg)
                return
            for msg, _ in group:
                await msg.ack()
            self.applied += len(applied)
            for d in deliveries:
                outcome = "applied" if d.message_id in applied else "duplicate"
                metrics.record_message(self.spec.durable, d.subject, outcome)

    async def _apply_batch(self, deliveries: list[Delivery], handler: BatchHandler) -> set[str]:
        """Apply the messages not applied before; returns their message ids."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "INSERT INTO inbox (consumer, message_id, stream_sequence)"
                " SELECT $1, m, s FROM unnest($2::text[], $3::int8[]) AS u(m, s)"
                " ON CONFLICT DO NOTHING RETURNING message_id",
                self.spec.durable,
                [d.message_id for d in deliveries],
                [d.stream_sequence for d in deliveries],
            )
            first_time = {r["message_id"] for r in rows}
            fresh = []
            for d in deliveries:  # the same message twice in one batch: its first copy
                if d.message_id in first_time:
                    first_time.discard(d.message_id)
                    fresh.append(d)
            if fresh:
                await handler.apply(conn, fresh)
        return {d.message_id for d in fresh}

    def _delivery(self, msg: Msg) -> Delivery:
        headers = dict(msg.headers or {})
        meta = msg.metadata
        subject = self._bus.logical_subject(msg.subject)
        return Delivery(
            subject=subject,
            message=_decode(subject, msg.data),
            message_id=headers.get(h.MSG_ID) or f"{self.spec.stream}:{meta.sequence.stream}",
            tenant_id=headers.get(h.TENANT, ""),
            stream_sequence=meta.sequence.stream,
            deliveries=meta.num_delivered,
            headers=headers,
        )

    async def _apply(self, delivery: Delivery) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            first_time = await conn.fetchval(
                "INSERT INTO inbox (consumer, message_id, stream_sequence) VALUES ($1, $2, $3)"
                " ON CONFLICT DO NOTHING RETURNING true",
                self.spec.durable,
                delivery.message_id,
                delivery.stream_sequence,
            )
            if not first_time:
                log.debug("message_already_applied")
                return False
            await self._handler(conn, delivery)
        return True

    async def _dead_letter(
        self, msg: Msg, subject: str, message_id: str, tenant_id: str, reason: str
    ) -> None:
        meta = msg.metadata
        recorded = await self._record_dead_letter(
            stream_sequence=meta.sequence.stream,
            subject=subject,
            message_id=message_id,
            tenant_id=tenant_id,
            headers=dict(msg.headers or {}),
            payload=msg.data,
            reason=reason,
            deliveries=meta.num_delivered,
        )
        if recorded:
            log.error("message_dead_lettered", reason=reason)
            metrics.record_dead_letter(self.spec.durable, subject)
        await msg.term()

    async def _record_dead_letter(self, **row: object) -> bool:
        """Claim the message in the inbox, then record it as dead. When the claim finds the
        message already applied (a slow delivery that outlived its ack wait committed after
        all), nothing is recorded: applied and dead-lettered never both hold."""
        async with self._pool.acquire() as conn, conn.transaction():
            claimed = await conn.fetchval(
                "INSERT INTO inbox (consumer, message_id, stream_sequence) VALUES ($1, $2, $3)"
                " ON CONFLICT DO NOTHING RETURNING true",
                self.spec.durable,
                row["message_id"],
                row["stream_sequence"],
            )
            if not claimed:
                return False
            await conn.execute(
                "INSERT INTO dead_letters (consumer, stream, stream_sequence, subject, message_id,"
                " tenant_id, headers, payload, reason, deliveries)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                " ON CONFLICT (consumer, stream_sequence) DO NOTHING",
                self.spec.durable,
                self.spec.stream,
                row["stream_sequence"],
                row["subject"],
                row["message_id"],
                row["tenant_id"],
                row["headers"],
                row["payload"],
                row["reason"],
                row["deliveries"],
            )
        return True

    async def _on_max_deliveries(self, advisory: Msg) -> None:
        """The last delivery was never acknowledged (its process died): dead-letter it."""
        try:
            body = json.loads(advisory.data)
            sequence = int(body["stream_seq"])
            stored = await self._bus.js.get_msg(self._bus.stream_name(self.spec.stream), sequence)
            headers = dict(stored.headers or {})
            message_id = headers.get(h.MSG_ID) or f"{self.spec.stream}:{sequence}"
            recorded = await self._record_dead_letter(
                stream_sequence=sequence,
                subject=self._bus.logical_subject(stored.subject or ""),
                message_id=message_id,
                tenant_id=headers.get(h.TENANT, ""),
                headers=headers,
                payload=stored.data or b"",
                reason=f"no acknowledgement after {body.get('deliveries')} deliveries",
                deliveries=int(body.get("deliveries", self.spec.max_deliver)),
            )
            if recorded:
                log.error("message_dead_lettered", stream_sequence=sequence, source="advisory")
                metrics.record_dead_letter(
                    self.spec.durable, self._bus.logical_subject(stored.subject or "")
                )
        except Exception as exc:  # an advisory handler must never take the consumer down
            log.warning("max_deliveries_advisory_failed", error=repr(exc))


@contextlib.contextmanager
def message_spans(
    deliveries: Sequence[Delivery],
    consumer: str,
    parents: Sequence[otel_context.Context] | None = None,
) -> Iterator[list[Delivery]]:
    """One CONSUMER span per message of a batch, each in its producer's trace (`parents`:
    the contexts of the messages' headers, when already extracted) and linked to the current
    span (the batch's); yields the deliveries with their `trace_context` set. The spans end
    with the block, marked failed when it raises (the messages are then applied alone)."""
    if parents is None:
        parents = [h.context_from(d.headers) for d in deliveries]
    batch = trace.get_current_span().get_span_context()
    links = [trace.Link(batch)] if batch.is_valid else []
    start = tracer().start_span
    spans: list[trace.Span] = []
    traced: list[Delivery] = []
    for d, parent in zip(deliveries, parents, strict=True):
        span = start(
            f"{d.subject} process",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": "nats",
                "messaging.destination.name": d.subject,
                "messaging.message.id": d.message_id,
                "messaging.consumer.group.name": consumer,
                "messaging.nats.stream_sequence": d.stream_sequence,
                "messaging.nats.delivery_count": d.deliveries,
            },
        )
        spans.append(span)
        traced.append(dataclasses.replace(d, trace_context=trace.set_span_in_context(span, parent)))
    try:
        yield traced
    except BaseException as exc:
        for span in spans:
            span.set_status(trace.Status(trace.StatusCode.ERROR, f"batch failed: {exc!r}"))
        raise
    finally:
        for span in spans:
            span.end()


@contextlib.contextmanager
def in_trace_of(delivery: Delivery) -> Iterator[None]:
    """Run the block in the delivery's own trace context (its span in a batch), so what it
    does for that message alone (queries, events) joins that message's trace."""
    if delivery.trace_context is None:
        yield
        return
    token = otel_context.attach(delivery.trace_context)
    try:
        yield
    finally:
        otel_context.detach(token)


def _decode(subject: str, data: bytes) -> Message:
    try:
        cls = message_type(subject)
    except UnknownSubject as exc:
        raise PoisonMessage(str(exc)) from None
    try:
        message = cls.FromString(data)
    except DecodeError as exc:
        raise PoisonMessage(f"payload is not a valid {cls.DESCRIPTOR.full_name}: {exc}") from None
    return message
