"""Nurture enrolments: when each step is due, and which facts stop an enrolment.

A step is due at enrolled_at + day_offset x 24 h. An enrolment stops when the lead replies
(email or sms reply), converts (stage customer, or a purchase / signup event or an event
flagged as a conversion), unsubscribes (email or sms consent withdrawn, or an `unsubscribe`
custom event) or is erased.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from leadflow_routing.domain.config import NurtureChannel, NurtureSequence
from leadflow_routing.domain.snapshot import LifecycleStage, ShortNamedEnum


class EnrollmentState(ShortNamedEnum):
    UNSPECIFIED = 0
    ACTIVE = 1
    COMPLETED = 2
    STOPPED = 3


class StopReason(ShortNamedEnum):
    UNSPECIFIED = 0
    REPLIED = 1
    CONVERTED = 2
    UNSUBSCRIBED = 3
    ERASED = 4


REPLY_EVENTS = frozenset({"email_replied", "sms_replied"})
CONVERSION_EVENTS = frozenset({"purchase", "signup"})
UNSUBSCRIBE_EVENTS = frozenset({"unsubscribe", "unsubscribed", "email_unsubscribed"})
"""Custom event names that mean the lead unsubscribed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduledStep:
    step_index: int
    day_offset: int
    template: str
    channel: NurtureChannel
    due_at: datetime


def schedule(sequence: NurtureSequence, enrolled_at: datetime) -> tuple[ScheduledStep, ...]:
    return tuple(
        ScheduledStep(
            step_index=i,
            day_offset=step.day_offset,
            template=step.template,
            channel=step.channel
            if step.channel is not NurtureChannel.UNSPECIFIED
            else NurtureChannel.EMAIL,
            due_at=enrolled_at + timedelta(days=step.day_offset),
        )
        for i, step in enumerate(sequence.steps)
    )


def stop_for_event(event_name: str, is_conversion: bool = False) -> StopReason | None:
    """`event_name`: the event type's short name, or the custom event's own name."""
    if event_name in REPLY_EVENTS:
        return StopReason.REPLIED
    if is_conversion or event_name in CONVERSION_EVENTS:
        return StopReason.CONVERTED
    if event_name in UNSUBSCRIBE_EVENTS:
        return StopReason.UNSUBSCRIBED
    return None


def stop_for_stage(stage: LifecycleStage) -> StopReason | None:
    return StopReason.CONVERTED if stage is LifecycleStage.CUSTOMER else None


def stop_for_consent(
    email: bool | None, sms: bool | None, channels: frozenset[NurtureChannel]
) -> StopReason | None:
    """Withdrawn consent for a channel the sequence uses stops it (a call-only sequence
    needs neither)."""
    if email is False and NurtureChannel.EMAIL in channels:
        return StopReason.UNSUBSCRIBED
    if sms is False and NurtureChannel.SMS in channels:
        return StopReason.UNSUBSCRIBED
    return None
