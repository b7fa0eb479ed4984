"""The events routing publishes through its outbox: lead routed (one per brand of a
decision), assignment breached, nurture step due. Ids are stable where a retry could
publish twice: a step's event id is derived from (enrolment, step)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from leadflow.common.v1 import event_metadata_pb2
from leadflow.routing.v1 import events_pb2
from leadflow.routing.v1 import routing_types_pb2 as tpb
from leadflow_platform.nats import OutboxMessage
from leadflow_routing.api.mapping import set_duration, set_timestamp

PRODUCER = "routing"


def new_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex}"


def step_event_id(enrollment_id: str, step_index: int) -> str:
    return f"routing-step-{enrollment_id}-{step_index}"


def metadata(
    target: event_metadata_pb2.EventMetadata,
    event_id: str,
    tenant_id: str,
    at: datetime,
    causation_id: str = "",
) -> None:
    target.event_id = event_id
    target.tenant_id = tenant_id
    target.producer = PRODUCER
    target.causation_id = causation_id
    set_timestamp(target.occurred_at, at)


def lead_routed(tenant_id: str, message: events_pb2.LeadRouted) -> OutboxMessage:
    # The payload names the lead (traits): cleared from the outbox once published.
    return OutboxMessage(
        message,
        message_id=message.metadata.event_id,
        tenant_id=tenant_id,
        redact_after_publish=True,
    )


def assignment_breached(
    tenant_id: str,
    *,
    assignment_id: str,
    lead_id: str,
    brand_id: str,
    owner: tpb.OwnerRef,
    assigned_at: datetime,
    acknowledge_by: datetime | None,
    within: timedelta,
    action: int,
    resulting_state: int,
    new_assignment_id: str,
    new_owner: tpb.OwnerRef | None,
    new_acknowledge_by: datetime | None,
    config_version: int,
    decision_id: str,
    at: datetime,
) -> OutboxMessage:
    message = events_pb2.AssignmentBreached(
        assignment_id=assignment_id,
        lead_id=lead_id,
        brand_id=brand_id,
        owner=owner,
        action=action,  # type: ignore[arg-type]
        resulting_state=resulting_state,  # type: ignore[arg-type]
        new_assignment_id=new_assignment_id,
        config_version=config_version,
        decision_id=decision_id,
    )
    event_id = f"routing-breach-{assignment_id}"
    metadata(message.metadata, event_id, tenant_id, at, assignment_id)
    set_timestamp(message.assigned_at, assigned_at)
    set_timestamp(message.acknowledge_by, acknowledge_by)
    set_duration(message.acknowledge_within, within)
    if new_owner is not None:
        message.new_owner.CopyFrom(new_owner)
    set_timestamp(message.new_acknowledge_by, new_acknowledge_by)
    return OutboxMessage(message, message_id=event_id, tenant_id=tenant_id)


def step_due(tenant_id: str, message: events_pb2.NurtureStepDue) -> OutboxMessage:
    return OutboxMessage(message, message_id=message.metadata.event_id, tenant_id=tenant_id)
