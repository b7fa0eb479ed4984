"""One subject's journey: milestones, engagement trend and churn risk with its factors.
Pure functions over the subject's events; times are microseconds since the epoch."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

DAY_US = 86_400_000_000
TREND_WINDOW_US = 28 * DAY_US

# Event types the journey reads (leadflow.common.v1.EventType).
EMAIL_SENT, EMAIL_OPENED, EMAIL_CLICKED, EMAIL_REPLIED, EMAIL_BOUNCED = 6, 7, 8, 9, 10
SMS_SENT, SMS_REPLIED = 11, 12
MEETING_SCHEDULED = 14
PURCHASE, SIGNUP = 18, 19
CONVERSIONS = frozenset({PURCHASE, SIGNUP})
OUTREACH = frozenset({EMAIL_SENT, SMS_SENT})
RESPONSES = frozenset({EMAIL_OPENED, EMAIL_CLICKED, EMAIL_REPLIED, SMS_REPLIED})

# Churn risk weights; they sum to 1, so the risk stays in 0..1.
INACTIVITY_WEIGHT = 0.5
DECLINE_WEIGHT = 0.2
BOUNCE_WEIGHT = 0.15
NO_REPLY_WEIGHT = 0.15
INACTIVITY_GRACE_DAYS = 7  # no risk from inactivity before this
INACTIVITY_FULL_DAYS = 60  # full weight from here on
MIN_OUTREACH = 3  # messages sent in the trend window before silence counts


class Trend(enum.Enum):
    INCREASING = 1
    STABLE = 2
    DECLINING = 3


class MilestoneKind(enum.Enum):
    FIRST_SEEN = 1
    IDENTIFIED = 2
    ALIASED = 3
    FIRST_TOUCH = 4
    STAGE_CHANGED = 5
    THRESHOLD_CROSSED = 6
    CONVERSION = 7
    ROUTED = 8
    FIRST_MEETING = 10


@dataclass(frozen=True)
class JourneyEvent:
    event_id: str
    time_us: int
    event_type: int
    brand_id: str
    machine: bool
    touchpoint: bool  # carries a marketing context
    currency: str = ""
    value: Decimal | None = None
    label: str = ""  # the event's short name or custom name


@dataclass(frozen=True)
class Milestone:
    kind: MilestoneKind
    time_us: int
    description: str
    event_id: str = ""
    brand_id: str = ""
    currency: str = ""
    value: Decimal | None = None
    stage: int = 0  # LifecycleStage, for STAGE_CHANGED
    grade: int = 0  # Grade after the change, for THRESHOLD_CROSSED


STAGE_NAMES = {
    1: "new",
    2: "contacted",
    3: "qualified",
    4: "engaged",
    5: "opportunity",
    6: "customer",
    7: "churned",
    8: "lost",
}
GRADE_NAMES = {1: "A+", 2: "A", 3: "B+", 4: "B", 5: "C+", 6: "C", 7: "D"}
TEMPERATURE_NAMES = {1: "cold", 2: "warm", 3: "hot"}


@dataclass(frozen=True)
class Outcome:
    """A scoring or routing event of the lead: a stage change, a threshold crossing or a
    route."""

    kind: MilestoneKind
    event_id: str
    time_us: int
    before: int = 0  # stage, grade or temperature before
    after: int = 0  # ... after
    grade_dimension: bool = True  # crossings: grade (else temperature)
    score: float = 0.0
    brand_id: str = ""  # routes: the target brand


def outcome_milestones(outcomes: Sequence[Outcome]) -> list[Milestone]:
    """Milestones of stage changes, threshold crossings and routes."""
    out = []
    for o in outcomes:
        if o.kind is MilestoneKind.STAGE_CHANGED:
            text = (
                f"Moved from {STAGE_NAMES.get(o.before, '?')} to {STAGE_NAMES.get(o.after, '?')}"
                if o.before
                else f"Entered {STAGE_NAMES.get(o.after, '?')}"
            )
            out.append(Milestone(o.kind, o.time_us, text, o.event_id, stage=o.after))
        elif o.kind is MilestoneKind.THRESHOLD_CROSSED:
            names = GRADE_NAMES if o.grade_dimension else TEMPERATURE_NAMES
            what = "Grade" if o.grade_dimension else "Temperature"
            text = (
                f"{what} {names.get(o.before, '?')} -> {names.get(o.after, '?')}"
                f" (score {o.score:.0f})"
            )
            grade = o.after if o.grade_dimension else 0
            out.append(Milestone(o.kind, o.time_us, text, o.event_id, grade=grade))
        else:
            out.append(
                Milestone(o.kind, o.time_us, f"Routed to {o.brand_id}", o.event_id, o.brand_id)
            )
    return out


def trend(recent: int, previous: int) -> Trend:
    """Recent window against the one before: more than 1.2 times is increasing, less than
    0.8 times declining (no recent activity after some before included)."""
    if previous == 0:
        return Trend.INCREASING if recent > 0 else Trend.STABLE
    ratio = recent / previous
    if ratio > 1.2:
        return Trend.INCREASING
    if ratio < 0.8:
        return Trend.DECLINING
    return Trend.STABLE


def windows(events: Sequence[JourneyEvent], now_us: int) -> tuple[int, int]:
    """Human events in the last 28 days and in the 28 days before."""
    human = [e.time_us for e in events if not e.machine and e.time_us <= now_us]
    recent = sum(1 for t in human if t > now_us - TREND_WINDOW_US)
    previous = sum(1 for t in human if now_us - 2 * TREND_WINDOW_US < t <= now_us - TREND_WINDOW_US)
    return recent, previous


@dataclass(frozen=True)
class Factor:
    code: str
    description: str
    contribution: float


def churn(events: Sequence[JourneyEvent], now_us: int) -> tuple[float, list[Factor]]:
    """Churn risk 0..1 and its factors (largest first; they sum to the risk). Machine
    engagement is ignored."""
    human = sorted(
        (e for e in events if not e.machine and e.time_us <= now_us), key=lambda e: e.time_us
    )
    factors: list[Factor] = []
    if human:
        days = (now_us - human[-1].time_us) / DAY_US
        span = INACTIVITY_FULL_DAYS - INACTIVITY_GRACE_DAYS
        share = min(max((days - INACTIVITY_GRACE_DAYS) / span, 0.0), 1.0)
        if share > 0:
            factors.append(
                Factor(
                    "days_since_last_activity",
                    f"No activity for {int(days)} days",
                    INACTIVITY_WEIGHT * share,
                )
            )
    recent, previous = windows(events, now_us)
    if previous and recent < previous:
        drop = 1 - recent / previous
        factors.append(
            Factor(
                "declining_engagement",
                f"Engagement fell from {previous} to {recent} events"
                " (last 28 days against the 28 before)",
                DECLINE_WEIGHT * drop,
            )
        )
    bounces = [e for e in human if e.event_type == EMAIL_BOUNCED]
    if bounces:
        after = [e for e in human if e.event_type in RESPONSES and e.time_us > bounces[-1].time_us]
        if not after:
            factors.append(
                Factor("email_bounced", "The latest email to this subject bounced", BOUNCE_WEIGHT)
            )
    sent = [e for e in human if e.event_type in OUTREACH and e.time_us > now_us - TREND_WINDOW_US]
    if len(sent) >= MIN_OUTREACH:
        answered = any(e.event_type in RESPONSES and e.time_us > sent[0].time_us for e in human)
        if not answered:
            factors.append(
                Factor(
                    "no_reply_to_outreach",
                    f"No open, click or reply to {len(sent)} messages sent in the last 28 days",
                    NO_REPLY_WEIGHT,
                )
            )
    factors.sort(key=lambda f: -f.contribution)
    return min(sum(f.contribution for f in factors), 1.0), factors


def milestones(
    events: Sequence[JourneyEvent],
    identified_us: int | None,
    aliases: Sequence[tuple[str, int]],  # (anonymous id, when merged)
    outcomes: Sequence[Outcome] = (),
) -> list[Milestone]:
    """Milestones, oldest first: first seen, identified, aliases, first touch, each
    conversion, first meeting."""
    ordered = sorted(events, key=lambda e: (e.time_us, e.event_id))
    out: list[Milestone] = []
    if ordered:
        e = ordered[0]
        out.append(
            Milestone(
                MilestoneKind.FIRST_SEEN,
                e.time_us,
                f"First seen: {e.label}",
                e.event_id,
                e.brand_id,
            )
        )
    if identified_us is not None:
        out.append(Milestone(MilestoneKind.IDENTIFIED, identified_us, "Identified as a lead"))
    for anonymous_id, at in aliases:
        out.append(
            Milestone(
                MilestoneKind.ALIASED, at, f"Anonymous visitor {anonymous_id} merged into the lead"
            )
        )
    touch = next((e for e in ordered if e.touchpoint and not e.machine), None)
    if touch is not None:
        out.append(
            Milestone(
                MilestoneKind.FIRST_TOUCH,
                touch.time_us,
                f"First touchpoint: {touch.label}",
                touch.event_id,
                touch.brand_id,
            )
        )
    for e in ordered:
        if e.event_type in CONVERSIONS and not e.machine:
            worth = f" ({e.value} {e.currency})" if e.value is not None and e.currency else ""
            out.append(
                Milestone(
                    MilestoneKind.CONVERSION,
                    e.time_us,
                    f"Converted: {e.label}{worth}",
                    e.event_id,
                    e.brand_id,
                    e.currency,
                    e.value,
                )
            )
    meeting = next(
        (e for e in ordered if e.event_type == MEETING_SCHEDULED and not e.machine), None
    )
    if meeting is not None:
        out.append(
            Milestone(
                MilestoneKind.FIRST_MEETING,
                meeting.time_us,
                "First meeting scheduled",
                meeting.event_id,
                meeting.brand_id,
            )
        )
    out += outcome_milestones(outcomes)
    out.sort(key=lambda m: (m.time_us, m.kind.value))
    return out
