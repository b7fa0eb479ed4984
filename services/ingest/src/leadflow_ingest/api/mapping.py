"""Protobuf <-> domain: what the servicer receives becomes plain data, and back."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2

from leadflow.common.v1 import event_type_pb2, lead_pb2, marketing_pb2
from leadflow.ingest.v1 import event_pb2, ingest_service_pb2, profile_pb2
from leadflow_ingest.domain.consent import ConsentDecision, ConsentState, ConsentStatus
from leadflow_ingest.domain.model import IncomingEvent, Marketing, Money, Violation
from leadflow_ingest.domain.profile import Location, Profile

# EVENT_TYPE_PAGE_VIEW -> "page_view"; the domain and every consumer speak short names.
EVENT_TYPE_NAMES: dict[int, str] = {
    value: name.removeprefix("EVENT_TYPE_").lower()
    for name, value in event_type_pb2.EventType.items()
    if value != event_type_pb2.EVENT_TYPE_UNSPECIFIED
}
EVENT_TYPE_VALUES = {name: value for value, name in EVENT_TYPE_NAMES.items()}
SEGMENT_NAMES = {
    lead_pb2.SEGMENT_ENTERPRISE: "enterprise",
    lead_pb2.SEGMENT_SMB: "smb",
    lead_pb2.SEGMENT_STARTUP: "startup",
}
SEGMENT_VALUES = {name: value for value, name in SEGMENT_NAMES.items()}
CONSENT_STATUS_NAMES: dict[int, ConsentStatus] = {
    profile_pb2.CONSENT_STATUS_GRANTED: "granted",
    profile_pb2.CONSENT_STATUS_WITHDRAWN: "withdrawn",
}
CONSENT_STATUS_VALUES = {name: value for value, name in CONSENT_STATUS_NAMES.items()}
PURPOSE_VALUES = {
    "tracking": profile_pb2.CONSENT_PURPOSE_TRACKING,
    "email": profile_pb2.CONSENT_PURPOSE_EMAIL,
    "sms": profile_pb2.CONSENT_PURPOSE_SMS,
    "portfolio_sharing": profile_pb2.CONSENT_PURPOSE_PORTFOLIO_SHARING,
}


# Values ---------------------------------------------------------------------------------


def to_datetime(ts: timestamp_pb2.Timestamp) -> datetime:
    return datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, UTC)


def from_datetime(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    fields = struct.fields  # indexing by key beats the map's items() view
    return {key: _value(fields[key]) for key in fields}


def _value(v: struct_pb2.Value) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "string_value":
        return v.string_value
    if kind == "number_value":
        return v.number_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "struct_value":
        fields = v.struct_value.fields
        return {key: _value(fields[key]) for key in fields}
    if kind == "list_value":
        return [_value(x) for x in v.list_value.values]
    return None


def dict_to_struct(values: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    if values:
        struct.update(values)
    return struct


# Events ---------------------------------------------------------------------------------


def incoming_event(index: int, event: event_pb2.TrackEvent) -> IncomingEvent:
    marketing = None
    if event.HasField("marketing"):
        m = event.marketing
        marketing = Marketing(m.channel, m.source, m.medium, m.campaign, m.content, m.term)
    value = None
    if event.HasField("value"):
        value = Money(event.value.units, event.value.nanos, event.value.currency_code)
    return IncomingEvent(
        index=index,
        event_id=event.event_id,
        brand_id=event.brand_id,
        type=EVENT_TYPE_NAMES.get(event.type, ""),
        custom_name=event.custom_name,
        lead_id=event.subject.lead_id,
        anonymous_id=event.subject.anonymous_id,
        session_id=event.session_id,
        occurred_at=to_datetime(event.occurred_at) if event.HasField("occurred_at") else None,
        sent_at=to_datetime(event.sent_at) if event.HasField("sent_at") else None,
        marketing=marketing,
        value=value,
        page_url=event.page_url,
        referrer=event.referrer,
        user_agent=event.user_agent,
        ip=event.ip,
        properties=struct_to_dict(event.properties) if event.HasField("properties") else None,
        size_bytes=event.ByteSize(),
    )


def marketing_message(marketing: Marketing) -> marketing_pb2.MarketingContext:
    return marketing_pb2.MarketingContext(
        channel=marketing.channel,
        source=marketing.source,
        medium=marketing.medium,
        campaign=marketing.campaign,
        content=marketing.content,
        term=marketing.term,
    )


def field_violations(violations: Iterable[Violation]) -> list[ingest_service_pb2.FieldViolation]:
    return [
        ingest_service_pb2.FieldViolation(
            field=v.field,
            code=ingest_service_pb2.ViolationCode.Value(f"VIOLATION_CODE_{v.code}"),
            reason=v.reason,
        )
        for v in violations
    ]


# Profiles and consent -------------------------------------------------------------------


def profile_from_message(message: profile_pb2.LeadProfile) -> Profile:
    return Profile(
        email=message.email,
        first_name=message.first_name,
        last_name=message.last_name,
        phone=message.phone,
        location=Location(message.location.city, message.location.region, message.location.country),
        company=message.company,
        industry=message.industry,
        customer_type=message.customer_type,
        segment=SEGMENT_NAMES.get(message.segment, ""),
        interests=tuple(message.interests),
        home_brand_id=message.home_brand_id,
        lead_source=message.lead_source,
        traits=struct_to_dict(message.traits),
    )


def profile_message(profile: Profile) -> profile_pb2.LeadProfile:
    loc = profile.location
    return profile_pb2.LeadProfile(
        email=profile.email,
        first_name=profile.first_name,
        last_name=profile.last_name,
        phone=profile.phone,
        location=profile_pb2.Location(city=loc.city, region=loc.region, country=loc.country),
        company=profile.company,
        industry=profile.industry,
        customer_type=profile.customer_type,
        segment=SEGMENT_VALUES.get(profile.segment, lead_pb2.SEGMENT_UNSPECIFIED),
        interests=list(profile.interests),
        home_brand_id=profile.home_brand_id,
        lead_source=profile.lead_source,
        traits=dict_to_struct(profile.traits),
    )


def profile_to_json(profile: Profile) -> dict[str, Any]:
    """The stored form of a profile (a jsonb column), readable in psql."""
    loc = profile.location
    return {
        "email": profile.email,
        "first_name": profile.first_name,
        "last_name": profile.last_name,
        "phone": profile.phone,
        "location": {"city": loc.city, "region": loc.region, "country": loc.country},
        "company": profile.company,
        "industry": profile.industry,
        "customer_type": profile.customer_type,
        "segment": profile.segment,
        "interests": list(profile.interests),
        "home_brand_id": profile.home_brand_id,
        "lead_source": profile.lead_source,
        "traits": profile.traits,
    }


def profile_from_json(data: dict[str, Any]) -> Profile:
    loc = data.get("location") or {}
    return Profile(
        email=data.get("email", ""),
        first_name=data.get("first_name", ""),
        last_name=data.get("last_name", ""),
        phone=data.get("phone", ""),
        location=Location(loc.get("city", ""), loc.get("region", ""), loc.get("country", "")),
        company=data.get("company", ""),
        industry=data.get("industry", ""),
        customer_type=data.get("customer_type", ""),
        segment=data.get("segment", ""),
        interests=tuple(data.get("interests", ())),
        home_brand_id=data.get("home_brand_id", ""),
        lead_source=data.get("lead_source", ""),
        traits=dict(data.get("traits") or {}),
    )


def consent_to_json(state: ConsentState) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for purpose in PURPOSE_VALUES:
        decision = state.get(purpose)
        if decision is not None:
            out[purpose] = {
                "status": decision.status,
                "source": decision.source,
                "decided_at": decision.decided_at.isoformat(),
            }
    return out


def consent_from_json(data: dict[str, Any] | None) -> ConsentState:
    decisions: dict[str, ConsentDecision] = {}
    for purpose, d in (data or {}).items():
        decisions[purpose] = ConsentDecision(
            d["status"], d["source"], datetime.fromisoformat(d["decided_at"])
        )
    return ConsentState(**decisions)


def consent_message(state: ConsentState) -> profile_pb2.ConsentState:
    message = profile_pb2.ConsentState()
    for purpose in PURPOSE_VALUES:
        decision = state.get(purpose)
        if decision is not None:
            target = getattr(message, purpose)
            target.status = CONSENT_STATUS_VALUES[decision.status]
            target.source = decision.source
            target.decided_at.CopyFrom(from_datetime(decision.decided_at))
    return message
