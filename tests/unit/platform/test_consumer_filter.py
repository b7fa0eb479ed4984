"""A consumer skips what it did not subscribe to, whatever the server delivers (nats-server
before 2.10 ignores a list of filter subjects and delivers the whole stream)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leadflow_platform.nats.bus import Bus
from leadflow_platform.nats.consumer import Consumer, ConsumerSpec


@dataclass
class _Delivered:
    """What the consumer reads of a fetched message: its subject, and acking it."""

    subject: str
    acked: bool = False

    async def ack(self) -> None:
        self.acked = True


class _Unconnected:
    def jetstream(self) -> None:
        return None


async def _handler(conn: Any, delivery: Any) -> None:
    raise AssertionError("not called here")


def _consumer(*subjects: str) -> Consumer:
    spec = ConsumerSpec(durable="d", stream="INGEST", filter_subjects=subjects)
    return Consumer(spec, _handler, pool=None, bus=Bus(_Unconnected(), namespace="t1"))  # type: ignore[arg-type]


async def test_messages_of_other_subjects_are_acknowledged_and_skipped():
    consumer = _consumer("ingest.event.recorded", "ingest.subject.erased")
    wanted = _Delivered("t1.ingest.event.recorded")
    other = _Delivered("t1.ingest.subject.identified")
    erased = _Delivered("t1.ingest.subject.erased")
    kept = await consumer._without_unwanted([wanted, other, erased])  # type: ignore[arg-type]
    assert kept == [wanted, erased]
    assert other.acked and not wanted.acked and not erased.acked


async def test_wildcard_filters_are_left_to_the_server():
    consumer = _consumer("ingest.>")
    message = _Delivered("t1.ingest.subject.identified")
    assert await consumer._without_unwanted([message]) == [message]  # type: ignore[arg-type]
    assert not message.acked
