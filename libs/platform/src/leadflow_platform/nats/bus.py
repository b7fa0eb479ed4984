"""A connection to NATS JetStream, with leadflow's naming, provisioning and publishing.

Subjects and stream names in code are logical (`ingest.event.recorded`, `INGEST`); the bus
namespace (LEADFLOW_BUS_NAMESPACE) maps them to wire names (see BusNames).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import nats
from nats.aio.client import Client as NATS
from nats.errors import NoServersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from leadflow_platform.logging import get_logger
from leadflow_platform.nats.streams import BusNames, StreamSpec

log = get_logger(__name__)


class _ConnectionEvents:
    """What the connection reports, as log lines (a drain's own disconnect is not news)."""

    def __init__(self) -> None:
        self.closing = False

    async def error(self, exc: Exception) -> None:
        log.warning("nats_error", error=str(exc))

    async def disconnected(self) -> None:
        if not self.closing:
            log.warning("nats_disconnected")

    async def reconnected(self) -> None:
        log.info("nats_reconnected")


@dataclass(frozen=True)
class StreamLimits:
    max_age_seconds: float = 7 * 86400
    max_bytes: int = 8 * 1024**3
    duplicate_window_seconds: float = 120.0
    replicas: int = 1


class Bus:
    def __init__(self, nc: NATS, *, namespace: str = "", limits: StreamLimits | None = None):
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.names = BusNames(namespace)
        self._events = _ConnectionEvents()
        self.limits = limits or StreamLimits()

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        name: str,
        namespace: str = "",
        limits: StreamLimits | None = None,
        wait_seconds: float = 60.0,
    ) -> Bus:
        """Connect, retrying until `wait_seconds`; once connected, reconnect forever."""

        events = _ConnectionEvents()
        deadline = asyncio.get_running_loop().time() + wait_seconds
        delay = 0.2
        while True:
            try:
                nc = await nats.connect(
                    url,
                    name=name,
                    connect_timeout=2,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,  # once connected, reconnect forever
                    reconnect_time_wait=1,
                    error_cb=events.error,
                    disconnected_cb=events.disconnected,
                    reconnected_cb=events.reconnected,
                )
                break
            except (OSError, NoServersError, NatsTimeoutError) as exc:
                if asyncio.get_running_loop().time() >= deadline:
                    raise ConnectionError(f"NATS at {url} did not accept a connection") from exc
                log.warning("nats_unavailable", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        bus = cls(nc, namespace=namespace, limits=limits)
        bus._events = events
        return bus

    # Naming (see BusNames) ---------------------------------------------------------------

    def subject(self, logical: str) -> str:
        return self.names.subject(logical)

    def logical_subject(self, wire: str) -> str:
        return self.names.logical_subject(wire)

    def stream_name(self, logical: str) -> str:
        return self.names.stream(logical)

    def consumer_name(self, logical: str) -> str:
        return self.names.consumer(logical)

    # Provisioning -------------------------------------------------------------------------

    async def ensure_stream(self, spec: StreamSpec) -> api.StreamInfo:
        """Create the stream, or bring an existing one to the configured limits."""
        name = self.stream_name(spec.name)
        config = api.StreamConfig(
            name=name,
            subjects=[self.subject(s) for s in spec.subjects],
            retention=api.RetentionPolicy.LIMITS,
            # A full stream refuses new messages instead of silently deleting old ones.
            discard=api.DiscardPolicy.NEW,
            storage=api.StorageType.FILE,
            max_age=self.limits.max_age_seconds,
            max_bytes=self.limits.max_bytes,
            duplicate_window=self.limits.duplicate_window_seconds,
            num_replicas=self.limits.replicas,
        )
        try:
            await self.js.stream_info(name)
        except NotFoundError:
            info = await self.js.add_stream(config)
            log.info("stream_created", stream=name)
            return info
        return await self.js.update_stream(config)

    async def ensure_consumer(
        self,
        *,
        stream: str,
        durable: str,
        filter_subjects: tuple[str, ...],
        max_deliver: int,
        ack_wait_seconds: float,
        max_ack_pending: int,
    ) -> str:
        """Create or update a durable pull consumer; returns its wire name."""
        name = self.consumer_name(durable)
        subjects = [self.subject(s) for s in filter_subjects]
        config = api.ConsumerConfig(
            name=name,
            durable_name=name,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=ack_wait_seconds,
            max_deliver=max_deliver,
            max_ack_pending=max_ack_pending,
            **(
                {"filter_subject": subjects[0]}
                if len(subjects) == 1
                else {"filter_subjects": subjects}
            ),
        )
        await self.js.add_consumer(self.stream_name(stream), config=config)
        return name

    # Publishing ---------------------------------------------------------------------------

    async def publish(
        self, subject: str, payload: bytes, headers: Mapping[str, str], *, timeout: float = 5.0
    ) -> api.PubAck:
        """Publish one message and wait for the stream to store it."""
        return await self.js.publish(
            self.subject(subject), payload, timeout=timeout, headers=dict(headers)
        )

    async def publish_many(
        self, messages: Sequence[tuple[str, bytes, Mapping[str, str]]], *, timeout: float = 10.0
    ) -> list[api.PubAck | BaseException]:
        """Publish with many acks in flight; one result (ack or error) per message, in order."""
        # No wait_stall: with it every publish waits in a task of its own, which lets the
        # client flush (one socket write) per message instead of once for the batch.
        futures = []
        for subject, payload, headers in messages:
            futures.append(
                await self.js.publish_async(self.subject(subject), payload, headers=dict(headers))
            )
        if not futures:
            return []
        await asyncio.wait(futures, timeout=timeout)
        results: list[api.PubAck | BaseException] = []
        for future in futures:
            if not future.done():
                future.cancel()
                results.append(TimeoutError("no ack from the stream in time"))
            elif future.cancelled():
                results.append(asyncio.CancelledError())
            else:
                results.append(future.exception() or future.result())
        return results

    async def drain(self) -> None:
        """Flush what is pending and close; the last use of the connection."""
        if self.nc.is_closed:
            return
        self._events.closing = True  # the disconnect that follows is expected
        try:
            await self.nc.drain()
        except Exception as exc:  # draining a broken connection must not block shutdown
            log.warning("nats_drain_failed", error=str(exc))
            await self.nc.close()
