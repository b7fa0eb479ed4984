"""What scoring reads from ingest's events, as domain inputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import struct_pb2

from leadflow.common.v1 import event_type_pb2, lead_pb2
from leadflow.ingest.v1 import profile_pb2
from leadflow_scoring.api.mapping import to_datetime
from leadflow_scoring.domain.features import (
    ActivityEvent,
    Consent,
    ConsentDecision,
    Location,
    Profile,
)

# EVENT_TYPE_PAGE_VIEW -> "page_view": the short names scoring models use.
EVENT_TYPE_NAMES: dict[int, str] = {
    value: name.removeprefix("EVENT_TYPE_").lower()
    for name, value in event_type_pb2.EventType.items()
    if value != event_type_pb2.EVENT_TYPE_UNSPECIFIED
}
_CUSTOM = event_type_pb2.EVENT_TYPE_CUSTOM
SEGMENT_NAMES = {
    lead_pb2.SEGMENT_ENTERPRISE: "enterprise",
    lead_pb2.SEGMENT_SMB: "smb",
    lead_pb2.SEGMENT_STARTUP: "startup",
}


@dataclass(frozen=True, slots=True)
class SubjectEvent:
    """A counted event with the ids of whom it belongs to (lead id empty: a visitor)."""

    lead_id: str
    anonymous_id: str
    event: ActivityEvent


def counted_events(events: Any) -> list[SubjectEvent]:
    """The events of an EventsRecorded that scoring counts: not machine-generated, not
    missing consent, of a known type, with a subject."""
    out: list[SubjectEvent] = []
    for e in events:
        flags = e.flags
        if flags.machine_generated or flags.consent_missing:
            continue
        name = e.custom_name if e.type == _CUSTOM else EVENT_TYPE_NAMES.get(e.type, "")
        subject = e.subject
        if not name or not (subject.lead_id or subject.anonymous_id) or not e.event_id:
            continue
        channel = e.marketing.channel if e.HasField("marketing") else None
        out.append(
            SubjectEvent(
                subject.lead_id,
                subject.anonymous_id,
                ActivityEvent(e.event_id, name, to_datetime(e.occurred_at), channel=channel),
            )
        )
    return out


def profile(message: profile_pb2.LeadProfile) -> Profile:
    loc = message.location
    return Profile(
        email=message.email,
        first_name=message.first_name,
        last_name=message.last_name,
        phone=message.phone,
        location=Location(loc.city, loc.region, loc.country),
        company=message.company,
        industry=message.industry,
        customer_type=message.customer_type,
        segment=SEGMENT_NAMES.get(message.segment, ""),
        interests=tuple(message.interests),
        home_brand_id=message.home_brand_id,
        lead_source=message.lead_source,
        traits=_struct(message.traits),
    )


def _struct(struct: struct_pb2.Struct) -> Mapping[str, object]:
    # Presence is all scoring reads of a trait: a value of each kind stands for itself.
    fields = struct.fields
    out: dict[str, object] = {}
    for key in fields:
        value = fields[key]
        kind = value.WhichOneof("kind")
        if kind == "string_value":
            out[key] = value.string_value
        elif kind == "number_value":
            out[key] = value.number_value
        elif kind == "bool_value":
            out[key] = value.bool_value
        elif kind == "struct_value":
            out[key] = dict(value.struct_value.fields)
        elif kind == "list_value":
            out[key] = list(value.list_value.values)
        else:
            out[key] = None
    return out


def consent(state: profile_pb2.ConsentState) -> Consent:
    return Consent(_decision(state.email), _decision(state.sms))


def _decision(d: profile_pb2.ConsentDecision) -> ConsentDecision:
    if d.status == profile_pb2.CONSENT_STATUS_UNSPECIFIED:
        return ConsentDecision()
    return ConsentDecision(
        d.status == profile_pb2.CONSENT_STATUS_GRANTED,
        to_datetime(d.decided_at) if d.HasField("decided_at") else None,
    )
