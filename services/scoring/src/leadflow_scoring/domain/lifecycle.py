"""Lifecycle stages: which moves are legal, automatic rules, and the transition record.

The line is new -> contacted -> qualified -> engaged -> opportunity -> customer; churned and
lost are exits reachable from any other stage, and a lead leaves an exit to any stage of the
line (re-activation). Moves forward may skip stages; moves backwards along the line and moves
to the current stage are refused (scoring_service.proto, TransitionStage).

What events do to a lead's lifecycle does not depend on the order they arrive in: it is the
fold of the lead's events in (occurred_at, event_id) order (`replay`), from the lead's first
sighting or from its latest manual transition (a person's decision is a fixed point: events
dated before it that arrive after it count in the score, not in the stages before it). An
event that arrives after the ones it precedes either lands where the fold would put it
(`fits_in_order`) or makes the caller replay from the last transition before it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from leadflow_scoring.domain.violations import Violation

MAX_TOUCHPOINT_IDS = 100
"""Touchpoint ids kept per stage visit (the most recent); the count keeps counting."""

_ZERO = timedelta(0)

EventKey = tuple[datetime, str]
"""(occurred_at, event_id): the order events are folded in."""


class LifecycleStage(StrEnum):
    """Values are the proto enum names without LIFECYCLE_STAGE_, lower case."""

    NEW = "new"
    CONTACTED = "contacted"
    QUALIFIED = "qualified"
    ENGAGED = "engaged"
    OPPORTUNITY = "opportunity"
    CUSTOMER = "customer"
    CHURNED = "churned"
    LOST = "lost"


LINE: tuple[LifecycleStage, ...] = (
    LifecycleStage.NEW,
    LifecycleStage.CONTACTED,
    LifecycleStage.QUALIFIED,
    LifecycleStage.ENGAGED,
    LifecycleStage.OPPORTUNITY,
    LifecycleStage.CUSTOMER,
)
EXITS: frozenset[LifecycleStage] = frozenset({LifecycleStage.CHURNED, LifecycleStage.LOST})
_POSITION: dict[LifecycleStage, int] = {stage: i for i, stage in enumerate(LINE)}


class TransitionTrigger(StrEnum):
    INITIAL = "initial"
    API = "api"
    RULE = "rule"


@dataclass(frozen=True, slots=True)
class StageRule:
    """An event of `event_type` moves the lead to `stage` (a stage of the line)."""

    event_type: str
    stage: LifecycleStage


@dataclass(frozen=True, slots=True)
class LifecycleRules:
    stage_rules: tuple[StageRule, ...] = (
        StageRule("email_sent", LifecycleStage.CONTACTED),
        StageRule("form_submitted", LifecycleStage.QUALIFIED),
        StageRule("meeting_scheduled", LifecycleStage.OPPORTUNITY),
        StageRule("purchase", LifecycleStage.CUSTOMER),
    )
    # event type -> latest stage of its rules ("when one event matches several, the latest
    # stage wins"); exits are never targets of a rule (validation refuses them).
    by_event_type: dict[str, LifecycleStage] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "stage_rules", tuple(self.stage_rules))
        lookup: dict[str, LifecycleStage] = {}
        for rule in self.stage_rules:
            if rule.stage in EXITS:
                continue
            known = lookup.get(rule.event_type)
            if known is None or _POSITION[rule.stage] > _POSITION[known]:
                lookup[rule.event_type] = rule.stage
        object.__setattr__(self, "by_event_type", lookup)


def check_transition(current: LifecycleStage, target: LifecycleStage) -> Violation | None:
    """None when `current -> target` is allowed, else why not (field "to_stage")."""
    if target is current:
        return Violation("to_stage", "SAME_STAGE", f"the lead is already {current.value}")
    if target in EXITS or current in EXITS:
        return None
    if _POSITION[target] > _POSITION[current]:
        return None
    return Violation(
        "to_stage",
        "BACKWARDS",
        f"cannot move back from {current.value} to {target.value}; "
        "only forward, to churned or lost, or out of churned or lost",
    )


def auto_transition(
    current: LifecycleStage, event_type: str, rules: LifecycleRules
) -> LifecycleStage | None:
    """The stage an event of `event_type` moves the lead to, or None.

    Only forward along the line, or out of churned/lost (re-activation). The caller passes
    only events scoring counts (not machine-generated, not missing consent).
    """
    target = rules.by_event_type.get(event_type)
    if target is None:
        return None
    if current in EXITS or _POSITION[target] > _POSITION[current]:
        return target
    return None


def rule_reason(event_type: str, stage: LifecycleStage) -> str:
    return f"rule: {event_type} -> {stage.value}"


INITIAL_REASON = "first seen"


@dataclass(frozen=True, slots=True)
class StageVisit:
    """The lead's current stage, since when, and its touchpoints while in it.

    `touchpoints` holds (occurred_at, event_id), oldest first, at most the
    MAX_TOUCHPOINT_IDS most recent; `touchpoint_count` counts all of them. `entered_by` is
    the event that moved the lead in by a rule ("" for the first sighting or a manual move):
    the visit holds the events after (entered_at, entered_by).
    """

    stage: LifecycleStage
    entered_at: datetime
    touchpoints: tuple[tuple[datetime, str], ...] = ()
    touchpoint_count: int = 0
    entered_by: str = ""

    @property
    def entry_key(self) -> EventKey:
        return (self.entered_at, self.entered_by)

    @property
    def touchpoint_event_ids(self) -> tuple[str, ...]:
        return tuple(event_id for _, event_id in self.touchpoints)


@dataclass(frozen=True, slots=True)
class Transition:
    """One lifecycle transition (proto LifecycleTransition without its id, which the
    service assigns). `from_stage` is None for the initial entry into `new`."""

    from_stage: LifecycleStage | None
    to_stage: LifecycleStage
    at: datetime
    reason: str
    trigger: TransitionTrigger
    triggering_event_id: str = ""
    actor: str = ""
    time_in_previous_stage: timedelta = _ZERO
    touchpoint_event_ids: tuple[str, ...] = ()
    touchpoint_count: int = 0


class TransitionRefused(ValueError):
    def __init__(self, violation: Violation) -> None:
        super().__init__(str(violation))
        self.violation = violation


def enter_initial(at: datetime, first_event_id: str = "") -> tuple[Transition, StageVisit]:
    """A lead first seen by scoring enters `new`."""
    transition = Transition(
        from_stage=None,
        to_stage=LifecycleStage.NEW,
        at=at,
        reason=INITIAL_REASON,
        trigger=TransitionTrigger.INITIAL,
        triggering_event_id=first_event_id,
    )
    return transition, StageVisit(LifecycleStage.NEW, at)


def record_touchpoint(visit: StageVisit, event_id: str, occurred_at: datetime) -> StageVisit:
    """Counts a touchpoint in the current stage.

    Idempotent for the ids still listed. A touchpoint from before the lead entered the stage
    is not counted: the previous stage's record is closed. Record an event's touchpoint
    before applying rules, so that the event that moves the lead counts in the stage it
    moved the lead out of.
    """
    if (occurred_at, event_id) <= visit.entry_key:
        return visit
    entry = (occurred_at, event_id)
    touchpoints = visit.touchpoints
    for _, known in touchpoints:
        if known == event_id:
            return visit
    if len(touchpoints) >= MAX_TOUCHPOINT_IDS and entry < touchpoints[0]:
        kept = touchpoints  # older than every id kept: counted, not listed
    else:
        kept = _insert_sorted(touchpoints, entry)[-MAX_TOUCHPOINT_IDS:]
    return StageVisit(
        visit.stage, visit.entered_at, kept, visit.touchpoint_count + 1, visit.entered_by
    )


def transition(
    visit: StageVisit,
    to_stage: LifecycleStage,
    at: datetime,
    *,
    reason: str,
    trigger: TransitionTrigger,
    triggering_event_id: str = "",
    actor: str = "",
) -> tuple[Transition, StageVisit]:
    """Leaves the current stage for `to_stage`; raises TransitionRefused when illegal.

    `at` is the request time (API) or the triggering event's occurred_at (rules); a
    late event dated before the current stage was entered moves the lead as of the entry
    time, so history stays ordered and time in stage is never negative.
    """
    refusal = check_transition(visit.stage, to_stage)
    if refusal is not None:
        raise TransitionRefused(refusal)
    at = max(at, visit.entered_at)
    record = Transition(
        from_stage=visit.stage,
        to_stage=to_stage,
        at=at,
        reason=reason,
        trigger=trigger,
        triggering_event_id=triggering_event_id,
        actor=actor,
        time_in_previous_stage=at - visit.entered_at,
        touchpoint_event_ids=visit.touchpoint_event_ids,
        touchpoint_count=visit.touchpoint_count,
    )
    entered_by = triggering_event_id if trigger is TransitionTrigger.RULE else ""
    return record, StageVisit(to_stage, at, entered_by=entered_by)


def entry_key(record: Transition) -> EventKey:
    """Where a recorded transition sits among the lead's events."""
    by = record.triggering_event_id if record.trigger is TransitionTrigger.RULE else ""
    return (record.at, by)


def visit_after(record: Transition) -> StageVisit:
    """The visit a transition opened, before any touchpoint."""
    return StageVisit(record.to_stage, record.at, entered_by=entry_key(record)[1])


def shapes_lifecycle(event_type: str, channel: str | None, rules: LifecycleRules) -> bool:
    """Whether an event can matter to the lifecycle: a touchpoint, or a rule's event."""
    return channel is not None or event_type in rules.by_event_type


def fits_in_order(
    visit: StageVisit,
    key: EventKey,
    event_type: str,
    rules: LifecycleRules,
    last_activity: datetime | None,
) -> bool:
    """Whether applying the event to `visit` gives what the fold in event order gives.

    It does when the event belongs to the current visit and either moves nothing (its
    touchpoint joins the visit) or is newer than every event applied so far
    (`last_activity`, the lead's newest counted event). Otherwise replay from it.
    """
    if key <= visit.entry_key:
        return False
    if auto_transition(visit.stage, event_type, rules) is None:
        return True
    return last_activity is None or key[0] > last_activity


def replay(
    visit: StageVisit,
    events: Iterable[tuple[EventKey, str, str | None]],
    rules: LifecycleRules,
) -> tuple[list[Transition], StageVisit]:
    """The fold: from `visit`, the lead's ((occurred_at, event_id), type, channel) after
    its entry in key order: each touchpoint counted in the stage of its time, each rule
    applied. Returns the transitions made and the visit at the end."""
    made: list[Transition] = []
    for key, event_type, channel in sorted(events, key=lambda e: e[0]):
        if key <= visit.entry_key:
            continue
        occurred_at, event_id = key
        if channel is not None:
            visit = record_touchpoint(visit, event_id, occurred_at)
        target = auto_transition(visit.stage, event_type, rules)
        if target is not None:
            record, visit = transition(
                visit,
                target,
                occurred_at,
                reason=rule_reason(event_type, target),
                trigger=TransitionTrigger.RULE,
                triggering_event_id=event_id,
            )
            made.append(record)
    return made, visit


def time_in_stage(visit: StageVisit, now: datetime) -> timedelta:
    return max(_ZERO, now - visit.entered_at)


def _insert_sorted(
    items: tuple[tuple[datetime, str], ...], entry: tuple[datetime, str]
) -> tuple[tuple[datetime, str], ...]:
    # Most arrivals are the newest: scan from the end.
    i = len(items)
    while i > 0 and items[i - 1] > entry:
        i -= 1
    return (*items[:i], entry, *items[i:])
