"""`ingest.event.recorded`: the stored form of an event, and the bus messages carrying them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.protobuf import timestamp_pb2

from leadflow.common.v1 import event_metadata_pb2, event_type_pb2, money_pb2, subject_pb2
from leadflow.ingest.v1 import event_pb2, events_pb2, profile_pb2
from leadflow_ingest.api.mapping import (
    EVENT_TYPE_VALUES,
    from_datetime,
    marketing_message,
)
from leadflow_ingest.domain.batch import split_for_publishing
from leadflow_ingest.domain.ip import StoredIp
from leadflow_ingest.domain.model import MachineSignal, Marketing
from leadflow_ingest.geo import GeoLocation
from leadflow_platform.nats import OutboxMessage

PRODUCER = "ingest"


@dataclass(slots=True)
class Flags:
    """What the server noticed about one event; filled in as the event goes through."""

    clock_skew_clamped: bool = False
    backfill: bool = False
    machine_signal: MachineSignal | None = None
    consent_missing: bool = False
    event_id_generated: bool = False
    session_generated: bool = False
    marketing_parsed: bool = False
    lead_resolved_by_alias: bool = False

    def names(self) -> list[str]:
        """The flags that are set, as stored in `events.flags`."""
        names = [n for n in _BOOLEAN_FLAGS if getattr(self, n)]
        if self.machine_signal is not None:
            names.append("machine_generated")
        return names

    def write_to(self, target: event_pb2.RecordedEventFlags) -> None:
        """Set the flags that are true (all are false by default): cheaper than building
        a message and copying it."""
        for name in _BOOLEAN_FLAGS:
            if getattr(self, name):
                setattr(target, name, True)
        if self.machine_signal is not None:
            target.machine_generated = True
            target.machine_signal = event_pb2.MachineSignal.Value(
                f"MACHINE_SIGNAL_{self.machine_signal}"
            )

    def message(self) -> event_pb2.RecordedEventFlags:
        return event_pb2.RecordedEventFlags(
            clock_skew_clamped=self.clock_skew_clamped,
            backfill=self.backfill,
            machine_generated=self.machine_signal is not None,
            machine_signal=event_pb2.MachineSignal.Value(f"MACHINE_SIGNAL_{self.machine_signal}")
            if self.machine_signal is not None
            else event_pb2.MACHINE_SIGNAL_UNSPECIFIED,
            consent_missing=self.consent_missing,
            event_id_generated=self.event_id_generated,
            session_generated=self.session_generated,
            marketing_parsed=self.marketing_parsed,
            lead_resolved_by_alias=self.lead_resolved_by_alias,
        )


_BOOLEAN_FLAGS = (
    "clock_skew_clamped",
    "backfill",
    "consent_missing",
    "event_id_generated",
    "session_generated",
    "marketing_parsed",
    "lead_resolved_by_alias",
)


def _timestamp(target: timestamp_pb2.Timestamp, value: datetime) -> None:
    # Field by field: Timestamp.FromDatetime is pure Python and shows up in profiles.
    micros = (value - _EPOCH) // _MICROSECOND
    target.seconds, rest = divmod(micros, 1_000_000)
    target.nanos = rest * 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def recorded_event(
    source: event_pb2.TrackEvent,
    *,
    event_id: str,
    event_type: str,
    occurred_at: datetime,
    received_at: datetime,
    batch_sent_at: datetime | None,
    marketing: Marketing | None,
    ip: StoredIp | None,
    geo: GeoLocation | None,
) -> event_pb2.RecordedEvent:
    """The client's event as stored: corrected, enriched, and with no raw IP address. What
    needs the subject's state (its lead through an alias, its session, flags) is set later."""
    record = event_pb2.RecordedEvent(
        event_id=event_id,
        brand_id=source.brand_id,
        type=event_type_pb2.EventType.ValueType(EVENT_TYPE_VALUES[event_type]),
        custom_name=source.custom_name,
        subject=subject_pb2.SubjectRef(
            lead_id=source.subject.lead_id, anonymous_id=source.subject.anonymous_id
        ),
        page_url=source.page_url,
        referrer=source.referrer,
        user_agent=source.user_agent,
    )
    _timestamp(record.occurred_at, occurred_at)
    _timestamp(record.received_at, received_at)
    if source.HasField("occurred_at"):
        record.occurred_at_as_sent.CopyFrom(source.occurred_at)
    if source.HasField("sent_at"):
        record.sent_at.CopyFrom(source.sent_at)
    elif batch_sent_at is not None:
        _timestamp(record.sent_at, batch_sent_at)
    if marketing is not None:
        record.marketing.CopyFrom(marketing_message(marketing))
    if source.HasField("value"):
        record.value.CopyFrom(source.value)
    if ip is not None:
        if ip.hash:
            record.ip_hash = ip.hash
        else:
            record.ip_truncated = ip.truncated
    if geo is not None:
        record.geo.CopyFrom(
            profile_pb2.Location(country=geo.country, region=geo.region, city=geo.city)
        )
    if source.HasField("properties"):
        record.properties.CopyFrom(source.properties)
    return record


def recorded_messages(
    tenant_id: str,
    records: Sequence[bytes],
    committed_at: datetime,
    max_bytes: int,
) -> list[OutboxMessage]:
    """One EventsRecorded per committed batch, split when it would exceed `max_bytes`
    (a NATS message has a size limit); each part has its own stable message id.

    The records are already serialized (for the events table). An EventsRecorded is, on the
    wire, its metadata followed by each event as field 2 (tag, length, bytes), so the parts
    are assembled from those bytes instead of serializing every event a second time."""
    sizes = [len(r) for r in records]
    batch_id = uuid.uuid4().hex
    envelope = 200  # metadata: ids, tenant, time, producer
    messages = []
    for part, span in enumerate(
        split_for_publishing(sizes, max_bytes, envelope_bytes=envelope, framed=True)
    ):
        message_id = f"ingest-batch-{batch_id}-{part}"
        head = events_pb2.EventsRecorded(
            metadata=event_metadata_pb2.EventMetadata(
                event_id=message_id,
                tenant_id=tenant_id,
                occurred_at=from_datetime(committed_at),
                producer=PRODUCER,
            )
        )
        payload = head.SerializeToString() + b"".join(_EVENT_FIELD + _varint(sizes[i]) + records[i]
                                                       for i in span)  # fmt: skip
        messages.append(
            OutboxMessage(
                head,
                message_id=message_id,
                tenant_id=tenant_id,
                payload=payload,
            )
        )
    return messages


_EVENT_FIELD = bytes([(2 << 3) | 2])  # EventsRecorded.events: field 2, length-delimited


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def money(units: int, nanos: int, currency: str) -> money_pb2.Money:
    return money_pb2.Money(units=units, nanos=nanos, currency_code=currency)
