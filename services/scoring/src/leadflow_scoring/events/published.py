"""The events scoring publishes (through its outbox): score changed, threshold crossed,
stage changed. Each carries what its consumers need, so none of them queries scoring."""

from __future__ import annotations

import uuid
from datetime import datetime

from opentelemetry.context import Context

from leadflow.common.v1 import event_metadata_pb2, lead_pb2
from leadflow.scoring.v1 import events_pb2, lead_score_pb2
from leadflow_platform.nats import OutboxMessage
from leadflow_scoring.api.mapping import (
    CAUSE_VALUES,
    GRADE_VALUES,
    STAGE_VALUES,
    TEMPERATURE_VALUES,
    TRIGGER_VALUES,
    set_duration,
    set_timestamp,
)
from leadflow_scoring.domain.changes import (
    CrossingDirection,
    GradeCrossing,
    ScoreChangeVerdict,
    TemperatureCrossing,
)
from leadflow_scoring.domain.lifecycle import Transition

PRODUCER = "scoring"
_DIRECTIONS = {
    CrossingDirection.UP: events_pb2.CROSSING_DIRECTION_UP,
    CrossingDirection.DOWN: events_pb2.CROSSING_DIRECTION_DOWN,
}


def new_id() -> str:
    return f"scoring-{uuid.uuid4().hex}"


def _metadata(
    target: event_metadata_pb2.EventMetadata,
    event_id: str,
    tenant_id: str,
    at: datetime,
    causation_id: str,
) -> None:
    target.event_id = event_id
    target.tenant_id = tenant_id
    target.producer = PRODUCER
    target.causation_id = causation_id
    set_timestamp(target.occurred_at, at)


def _length_delimited(field_number: int, data: bytes) -> bytes:
    """A serialized message field (wire type 2): parsing a message's bytes followed by this
    sets the field, so the score is serialized once for the row and every event."""
    out = bytearray()
    for value in (field_number << 3 | 2, len(data)):
        while value > 0x7F:
            out.append(value & 0x7F | 0x80)
            value >>= 7
        out.append(value)
    return bytes(out) + data


_SCORE_CHANGED_SCORE = events_pb2.ScoreChanged.DESCRIPTOR.fields_by_name["score"].number
_THRESHOLD_CROSSED_SCORE = events_pb2.ThresholdCrossed.DESCRIPTOR.fields_by_name["score"].number


def score_events(
    tenant_id: str,
    score: lead_score_pb2.LeadScore,
    verdict: ScoreChangeVerdict,
    *,
    cause: str,
    causation_id: str,
    at: datetime,
    score_bytes: bytes | None = None,
    trace_context: Context | None = None,
) -> list[OutboxMessage]:
    """scoring.score.changed, then one scoring.threshold.crossed per crossing (grade
    first); nothing when the verdict is no change. `score_bytes`: `score` serialized, when
    the caller has it; `trace_context`: the trace they continue (None: the current one)."""
    if not verdict.changed:
        return []
    if score_bytes is None:
        score_bytes = score.SerializeToString()
    event_id = new_id()
    changed = events_pb2.ScoreChanged(
        lead_id=score.lead_id,
        previous_total=verdict.previous_total,
        previous_grade=GRADE_VALUES[verdict.previous_grade],
        previous_temperature=TEMPERATURE_VALUES[verdict.previous_temperature],
        cause=CAUSE_VALUES[cause],
    )
    _metadata(changed.metadata, event_id, tenant_id, at, causation_id)
    payload = changed.SerializeToString() + _length_delimited(_SCORE_CHANGED_SCORE, score_bytes)
    out = [
        OutboxMessage(
            changed,
            message_id=event_id,
            tenant_id=tenant_id,
            payload=payload,
            trace_context=trace_context,
        )
    ]
    for crossing in verdict.crossings:
        crossing_id = new_id()
        crossed = events_pb2.ThresholdCrossed(
            lead_id=score.lead_id, direction=_DIRECTIONS[crossing.direction]
        )
        if isinstance(crossing, GradeCrossing):
            crossed.dimension = events_pb2.THRESHOLD_DIMENSION_GRADE
            crossed.grade.from_grade = GRADE_VALUES[crossing.from_grade]
            crossed.grade.to_grade = GRADE_VALUES[crossing.to_grade]
        elif isinstance(crossing, TemperatureCrossing):
            crossed.dimension = events_pb2.THRESHOLD_DIMENSION_TEMPERATURE
            crossed.temperature.from_temperature = TEMPERATURE_VALUES[crossing.from_temperature]
            crossed.temperature.to_temperature = TEMPERATURE_VALUES[crossing.to_temperature]
        _metadata(crossed.metadata, crossing_id, tenant_id, at, causation_id)
        crossed_payload = crossed.SerializeToString() + _length_delimited(
            _THRESHOLD_CROSSED_SCORE, score_bytes
        )
        out.append(
            OutboxMessage(
                crossed,
                message_id=crossing_id,
                tenant_id=tenant_id,
                payload=crossed_payload,
                trace_context=trace_context,
            )
        )
    return out


def stage_changed(
    tenant_id: str,
    lead_id: str,
    transition_id: str,
    transition: Transition,
    home_brand_id: str,
    *,
    trace_context: Context | None = None,
) -> OutboxMessage:
    message = events_pb2.StageChanged(
        lead_id=lead_id,
        from_stage=STAGE_VALUES[transition.from_stage]
        if transition.from_stage
        else lead_pb2.LIFECYCLE_STAGE_UNSPECIFIED,
        to_stage=STAGE_VALUES[transition.to_stage],
        reason=transition.reason,
        trigger=TRIGGER_VALUES[transition.trigger],
        triggering_event_id=transition.triggering_event_id,
        touchpoint_event_ids=list(transition.touchpoint_event_ids),
        touchpoint_count=transition.touchpoint_count,
        home_brand_id=home_brand_id,
    )
    _metadata(
        message.metadata, transition_id, tenant_id, transition.at, transition.triggering_event_id
    )
    set_duration(message.time_in_previous_stage, transition.time_in_previous_stage)
    return OutboxMessage(
        message, message_id=transition_id, tenant_id=tenant_id, trace_context=trace_context
    )
