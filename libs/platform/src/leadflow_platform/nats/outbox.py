"""The transactional outbox and its relay.

A use case calls `add_to_outbox` on the connection of the transaction that changes state, so
the change and the event announcing it commit (or vanish) together. The relay publishes
committed rows to JetStream with `Nats-Msg-Id` = the row's message id and marks them sent.

Exactly once, end to end: if a relay dies after publishing but before marking, the rows are
published again later under the same id. Inside the stream's duplicate window JetStream drops
the copy; beyond it the consumers' inboxes do. Several relays may run at once: each claims
rows with `FOR UPDATE SKIP LOCKED`, so no row is in flight in two relays.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import asyncpg
from google.protobuf.message import Message
from opentelemetry import context as otel_context
from opentelemetry import trace

from leadflow_platform import metrics
from leadflow_platform.logging import get_logger
from leadflow_platform.nats import headers as h
from leadflow_platform.nats.bus import Bus
from leadflow_platform.nats.registry import subject_of
from leadflow_platform.telemetry import tracer

log = get_logger(__name__)
_dumps = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True)
class OutboxMessage:
    """An event to publish: the message id is stable, so a retry is recognised downstream."""

    message: Message
    message_id: str
    tenant_id: str
    subject: str = ""
    extra_headers: dict[str, str] = field(default_factory=dict)
    # Clear the stored payload once published (events that name an erased person).
    redact_after_publish: bool = False
    # The message already serialized, when the producer has its bytes at hand (`message`
    # still names the type and subject).
    payload: bytes | None = None
    # The trace the event continues (its PRODUCER span's parent); None: the current one. A
    # handler applying several messages at once passes the `Delivery.trace_context` of the
    # message that caused the event, so each message's trace goes on past the batch.
    trace_context: otel_context.Context | None = None

    def resolved_subject(self) -> str:
        return self.subject or subject_of(self.message)


def notify_channel(schema: str) -> str:
    return f"leadflow_outbox_{schema}"


async def add_to_outbox(conn: asyncpg.Connection, *messages: OutboxMessage) -> None:
    """Write events into the outbox of the connection's schema, in the caller's transaction.

    Each row stores the trace context of a PRODUCER span made here, a child of the request
    (or the message's `trace_context`) that caused the event, so its trace continues through
    the relay into every consumer. The span is made now rather than by the relay, once per
    subject and cause rather than per message: spans cost tens of µs each, and the relay is
    on every event's path.
    """
    if not messages:
        return
    # One PRODUCER span per subject and cause (a context, by identity: the contexts live as
    # long as the call), its message count set before it ends.
    producers: dict[tuple[str, int], _Producer] = {}
    rows = []
    try:
        for m in messages:
            subject = m.resolved_subject()
            key = (subject, id(m.trace_context))
            producer = producers.get(key)
            if producer is None:
                producer = producers[key] = _Producer(subject, m.trace_context)
            producer.count += 1
            headers = {
                **producer.headers,
                **m.extra_headers,
                h.TENANT: m.tenant_id,
                h.EVENT_TYPE: m.message.DESCRIPTOR.full_name,
            }
            payload = m.payload if m.payload is not None else m.message.SerializeToString()
            rows.append(
                (
                    m.message_id,
                    subject,
                    payload,
                    _dumps(headers),
                    m.tenant_id,
                    m.redact_after_publish,
                )
            )
    finally:
        for producer in producers.values():
            producer.end()
    # One statement for the lot (ids in the order given): a row per statement costs the
    # server a statement each.
    await conn.execute(
        "INSERT INTO outbox (message_id, subject, payload, headers, tenant_id,"
        " redact_after_publish) SELECT m, s, p, h::jsonb, t, r FROM unnest($1::text[],"
        " $2::text[], $3::bytea[], $4::text[], $5::text[], $6::bool[]) WITH ORDINALITY"
        " AS u(m, s, p, h, t, r, n) ORDER BY n ON CONFLICT (message_id) DO NOTHING",
        *[list(column) for column in zip(*rows, strict=True)],
    )
    # Delivered on commit only; wakes the relays at once instead of at their next poll.
    await conn.execute("SELECT pg_notify('leadflow_outbox_' || current_schema(), '')")


class _Producer:
    """The PRODUCER span of the events of one subject and cause, and its trace headers."""

    __slots__ = ("count", "headers", "span")

    def __init__(self, subject: str, parent: otel_context.Context | None) -> None:
        self.span = tracer().start_span(
            f"{subject} publish",
            context=parent,
            kind=trace.SpanKind.PRODUCER,
            attributes={"messaging.system": "nats", "messaging.destination.name": subject},
        )
        self.headers = h.trace_headers(trace.set_span_in_context(self.span, parent))
        self.count = 0

    def end(self) -> None:
        self.span.set_attribute("messaging.batch.message_count", self.count)
        self.span.end()


class OutboxRelay:
    """Publishes committed outbox rows of one schema, in id order within each claimed batch."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        bus: Bus,
        *,
        schema: str,
        batch_size: int = 500,
        poll_seconds: float = 1.0,
        after_publish: Callable[[Sequence[int]], Awaitable[None]] | None = None,
    ) -> None:
        self._pool = pool
        self._bus = bus
        self._schema = schema
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        # Runs after a batch is published and before it is marked sent (a seam for tests
        # that kill the relay exactly there).
        self._after_publish = after_publish
        self._wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set, then publish what is already committed and return."""
        listener = await self._listen()
        try:
            while not stop.is_set():
                # Cleared before the pass, not after: a commit notified during the pass
                # may have missed its query, and must wake the next one at once.
                self._wake.clear()
                try:
                    published = await self.relay_once()
                except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
                    log.warning("outbox_relay_retry", schema=self._schema, error=str(exc))
                    published = 0
                    await asyncio.sleep(self._poll_seconds)
                if published >= self._batch_size:
                    continue  # more may be waiting
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        _first_of(self._wake.wait(), stop.wait()), self._poll_seconds
                    )
            # Final pass: what committed during shutdown goes out now, not at next start.
            while await self.relay_once() >= self._batch_size:
                pass
        finally:
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.remove_listener(notify_channel(self._schema), self._on_notify)
                await self._pool.release(listener)

    async def _listen(self) -> asyncpg.Connection | None:
        """Hold one pool connection with a LISTEN for the relay's lifetime; polling covers
        the time it is lost."""
        try:
            conn = await self._pool.acquire()
            await conn.add_listener(notify_channel(self._schema), self._on_notify)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("outbox_listen_failed", schema=self._schema, error=str(exc))
            return None
        return conn

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def relay_once(self) -> int:
        """Claim, publish and mark one batch. Returns how many rows were published."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, message_id, subject, payload, headers FROM outbox"
                " WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch_size,
            )
            if not rows:
                return 0
            outgoing = [self._prepare(row) for row in rows]
            results = await self._bus.publish_many(outgoing)
            sent = [row["id"] for row, r in zip(rows, results, strict=True) if _ok(r)]
            sequences = [r.seq for r in results if not isinstance(r, BaseException)]
            failed = [
                (row["id"], repr(r)) for row, r in zip(rows, results, strict=True) if not _ok(r)
            ]
            if self._after_publish is not None:
                await self._after_publish(sent)
            if sent:
                await conn.execute(
                    "UPDATE outbox o SET published_at = now(), stream_sequence = s.seq,"
                    " publish_attempts = o.publish_attempts + 1, last_error = NULL,"
                    " payload = CASE WHEN o.redact_after_publish THEN ''::bytea"
                    " ELSE o.payload END"
                    " FROM unnest($1::bigint[], $2::bigint[]) AS s(id, seq) WHERE o.id = s.id",
                    sent,
                    sequences,
                )
            if failed:
                await conn.executemany(
                    "UPDATE outbox SET publish_attempts = publish_attempts + 1, last_error = $2"
                    " WHERE id = $1",
                    failed,
                )
                log.warning(
                    "outbox_publish_failed",
                    schema=self._schema,
                    failed=len(failed),
                    error=failed[0][1],
                )
        if sent:
            log.debug("outbox_relayed", schema=self._schema, count=len(sent))
            metrics.record_published(len(sent))
        if failed and not sent:
            await asyncio.sleep(self._poll_seconds)  # the stream refuses; do not spin
        return len(sent)

    @staticmethod
    def _prepare(row: asyncpg.Record) -> tuple[str, bytes, dict[str, str]]:
        # The stored headers carry the producer span's context (see add_to_outbox).
        headers: dict[str, str] = dict(row["headers"])
        headers[h.MSG_ID] = row["message_id"]
        return row["subject"], bytes(row["payload"]), headers


def _ok(result: object) -> bool:
    return not isinstance(result, BaseException)


async def _first_of(*aws: Awaitable[object]) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
