"""Building ingest requests and reading what ingest published, for tests and benchmarks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import nats
from google.protobuf import struct_pb2, timestamp_pb2

from leadflow.common.v1 import event_type_pb2, marketing_pb2, money_pb2, subject_pb2
from leadflow.ingest.v1 import event_pb2, events_pb2
from leadflow_platform.nats import headers as h
from leadflow_platform.nats.streams import BusNames


def ts(value: datetime) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromDatetime(value)
    return t


def event(
    event_id: str = "",
    *,
    type: str = "page_view",
    lead_id: str = "",
    anonymous_id: str = "",
    brand_id: str = "modumind",
    occurred_at: datetime | None = None,
    sent_at: datetime | None = None,
    properties: dict[str, Any] | None = None,
    value: tuple[int, int, str] | None = None,
    marketing: dict[str, str] | None = None,
    **fields: Any,
) -> event_pb2.TrackEvent:
    e = event_pb2.TrackEvent(
        event_id=event_id,
        brand_id=brand_id,
        type=event_type_pb2.EventType.Value(f"EVENT_TYPE_{type.upper()}") if type else 0,
        subject=subject_pb2.SubjectRef(lead_id=lead_id, anonymous_id=anonymous_id),
        **fields,
    )
    if occurred_at is not None:
        e.occurred_at.CopyFrom(ts(occurred_at))
    if sent_at is not None:
        e.sent_at.CopyFrom(ts(sent_at))
    if properties is not None:
        s = struct_pb2.Struct()
        s.update(properties)
        e.properties.CopyFrom(s)
    if value is not None:
        e.value.CopyFrom(money_pb2.Money(units=value[0], nanos=value[1], currency_code=value[2]))
    if marketing is not None:
        e.marketing.CopyFrom(marketing_pb2.MarketingContext(**marketing))
    return e


def now() -> datetime:
    return datetime.now(UTC)


async def published(nats_url: str, namespace: str, subject: str = "ingest.event.recorded"):
    """Every message on `subject` in the INGEST stream, in stream order:
    (Nats-Msg-Id, decoded message)."""
    names = BusNames(namespace)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        stream = names.stream("INGEST")
        info = await js.stream_info(stream)
        out = []
        if info.state.messages == 0:
            return out
        for seq in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
            try:
                msg = await js.get_msg(stream, seq)
            except nats.js.errors.NotFoundError:
                continue
            if names.logical_subject(msg.subject or "") != subject:
                continue
            cls = {
                "ingest.event.recorded": events_pb2.EventsRecorded,
                "ingest.subject.identified": events_pb2.SubjectIdentified,
                "ingest.subject.aliased": events_pb2.SubjectAliased,
                "ingest.consent.changed": events_pb2.ConsentChanged,
                "ingest.subject.erased": events_pb2.SubjectErased,
            }[subject]
            out.append(((msg.headers or {}).get(h.MSG_ID), cls.FromString(msg.data or b"")))
        return out
    finally:
        await nc.close()


def recorded_events(messages) -> Iterator[event_pb2.RecordedEvent]:
    for _, batch in messages:
        yield from batch.events
