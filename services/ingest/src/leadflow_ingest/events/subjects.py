"""Events about subjects: identified, aliased, consent changed, erased."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from leadflow.common.v1 import event_metadata_pb2, subject_pb2
from leadflow.ingest.v1 import events_pb2
from leadflow_ingest.api.mapping import (
    PURPOSE_VALUES,
    consent_message,
    from_datetime,
    profile_message,
)
from leadflow_ingest.domain.consent import ConsentState
from leadflow_ingest.domain.profile import Profile
from leadflow_ingest.events.recorded import PRODUCER
from leadflow_platform.nats import OutboxMessage


def _metadata(
    tenant_id: str, at: datetime, causation_id: str = ""
) -> tuple[str, event_metadata_pb2.EventMetadata]:
    event_id = f"ingest-{uuid.uuid4().hex}"
    return event_id, event_metadata_pb2.EventMetadata(
        event_id=event_id,
        tenant_id=tenant_id,
        occurred_at=from_datetime(at),
        producer=PRODUCER,
        causation_id=causation_id,
    )


def identified(
    tenant_id: str,
    at: datetime,
    *,
    lead_id: str,
    created: bool,
    profile: Profile,
    changed_fields: Sequence[str],
    consent: ConsentState,
    anonymous_ids: Sequence[str],
) -> OutboxMessage:
    event_id, metadata = _metadata(tenant_id, at)
    message = events_pb2.SubjectIdentified(
        metadata=metadata,
        lead_id=lead_id,
        created=created,
        profile=profile_message(profile),
        changed_fields=list(changed_fields),
        consent=consent_message(consent),
        anonymous_ids=list(anonymous_ids),
    )
    return OutboxMessage(message, message_id=event_id, tenant_id=tenant_id)


def aliased(
    tenant_id: str, at: datetime, *, anonymous_id: str, lead_id: str, events_reassigned: int
) -> OutboxMessage:
    event_id, metadata = _metadata(tenant_id, at)
    message = events_pb2.SubjectAliased(
        metadata=metadata,
        anonymous_id=anonymous_id,
        lead_id=lead_id,
        events_reassigned=events_reassigned,
    )
    return OutboxMessage(message, message_id=event_id, tenant_id=tenant_id)


def consent_changed(
    tenant_id: str,
    at: datetime,
    *,
    lead_id: str,
    anonymous_id: str,
    consent: ConsentState,
    changed: Sequence[str],
) -> OutboxMessage:
    event_id, metadata = _metadata(tenant_id, at)
    message = events_pb2.ConsentChanged(
        metadata=metadata,
        subject=subject_pb2.SubjectRef(lead_id=lead_id, anonymous_id=anonymous_id),
        consent=consent_message(consent),
        changed=[PURPOSE_VALUES[p] for p in changed],
    )
    return OutboxMessage(message, message_id=event_id, tenant_id=tenant_id)


def erased(
    tenant_id: str,
    at: datetime,
    *,
    erasure_id: str,
    lead_ids: Sequence[str],
    anonymous_ids: Sequence[str],
    emails: Sequence[str],
    phones: Sequence[str],
) -> OutboxMessage:
    event_id, metadata = _metadata(tenant_id, at, causation_id=erasure_id)
    message = events_pb2.SubjectErased(
        metadata=metadata,
        erasure_id=erasure_id,
        lead_ids=sorted(lead_ids),
        anonymous_ids=sorted(anonymous_ids),
        emails=sorted(emails),
        phones=sorted(phones),
    )
    # Once every consumer can read it from the stream, the outbox keeps no identifiers.
    return OutboxMessage(
        message, message_id=event_id, tenant_id=tenant_id, redact_after_publish=True
    )
