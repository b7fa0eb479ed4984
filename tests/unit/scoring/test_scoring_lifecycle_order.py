"""A lead's lifecycle does not depend on the order its events arrive in: applied message by
message as the service does (incrementally, replaying from stored history when an event
arrives after events it precedes), any arrival order gives the fold in event order."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow_scoring.domain.features import ActivityEvent, empty_features
from leadflow_scoring.domain.lifecycle import (
    EventKey,
    LifecycleStage,
    StageVisit,
    Transition,
    TransitionTrigger,
    enter_initial,
    replay,
    shapes_lifecycle,
)
from leadflow_scoring.domain.model import DEFAULT_MODEL
from leadflow_scoring.leads import LeadState, apply_replay, plan_replay, sorted_events

S = LifecycleStage
BASE = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
RULES = DEFAULT_MODEL.lifecycle
TYPES = ["email_sent", "form_submitted", "meeting_scheduled", "purchase", "page_view", "search"]


@dataclass
class Store:
    """What the database holds of one lead: its row, its transitions, its events."""

    transitions: list[tuple[str, Transition]] = field(default_factory=list)
    events: list[ActivityEvent] = field(default_factory=list)
    row: LeadState | None = None
    announced: list[str] = field(default_factory=list)


def _apply(store: Store, message: list[ActivityEvent]) -> None:
    """One EventsRecorded message, as ingestion.py and Leads.save apply it."""
    known = {e.event_id for e in store.events}
    fresh = sorted_events(e for e in message if e.event_id not in known)
    if store.row is None:
        first = min((e.occurred_at, e.event_id) for e in message)
        initial, visit = enter_initial(*first)
        state = LeadState("lead", empty_features(DEFAULT_MODEL), visit, None, True, first)
        state.transitions.append((str(uuid.uuid4()), initial))
    else:
        r = store.row
        state = LeadState("lead", r.features, r.visit, None, False, r.first_seen)
    store.events.extend(fresh)  # inserted before the lead is saved
    state.apply_events(fresh, DEFAULT_MODEL)
    if state.replay_from is not None:
        plan = plan_replay(state, store.transitions)
        since = plan.visit.entered_at
        events = [
            ((e.occurred_at, e.event_id), e.type, e.channel)
            for e in store.events
            if e.occurred_at >= since and shapes_lifecycle(e.type, e.channel, RULES)
        ]
        apply_replay(state, plan, events, RULES)
    dropped = set(state.dropped)
    store.transitions = [t for t in store.transitions if t[0] not in dropped]
    store.transitions += state.transitions
    store.announced += [i for i, _ in state.transitions if i not in state.quiet]
    state.transitions, state.dropped, state.quiet = [], [], set()
    store.row = state


def _outcome(store: Store) -> tuple[object, ...]:
    assert store.row is not None
    history = [
        (
            t.from_stage,
            t.to_stage,
            t.at,
            t.trigger,
            t.triggering_event_id,
            t.time_in_previous_stage,
            t.touchpoint_event_ids,
            t.touchpoint_count,
        )
        for _, t in store.transitions
    ]
    return (history, store.row.visit, store.row.first_seen, store.row.features.stage)


def _fold(events: list[ActivityEvent]) -> tuple[list[Transition], StageVisit, EventKey]:
    first = min((e.occurred_at, e.event_id) for e in events)
    initial, visit = enter_initial(*first)
    made, visit = replay(
        visit, [((e.occurred_at, e.event_id), e.type, e.channel) for e in events], RULES
    )
    return [initial, *made], visit, first


@st.composite
def _arrivals(draw: st.DrawFn) -> tuple[list[ActivityEvent], list[list[ActivityEvent]]]:
    n = draw(st.integers(1, 12))
    events = [
        ActivityEvent(
            f"e{i:02d}",
            draw(st.sampled_from(TYPES)),
            BASE + timedelta(minutes=draw(st.integers(0, 15))),  # ties included
            channel=draw(st.sampled_from([None, None, "paid_search", ""])),
        )
        for i in range(n)
    ]
    order = draw(st.permutations(events))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, n - 1)), max_size=n)))
    messages, start = [], 0
    for cut in [*cuts, n]:
        if cut > start:
            messages.append(list(order[start:cut]))
            start = cut
    return events, messages


@settings(max_examples=300, deadline=None)
@given(_arrivals(), st.data())
def test_any_arrival_order_gives_the_fold_in_event_order(arrival, data):
    events, messages = arrival
    one = Store()
    _apply(one, events)  # everything at once, in event order
    other = Store()
    for message in messages:
        _apply(other, message)
    # Redelivered messages change nothing.
    again = data.draw(st.sampled_from(messages))
    _apply(other, again)

    assert _outcome(other) == _outcome(one)
    history, visit, first = _fold(events)
    assert [t for _, t in one.transitions] == history
    assert one.row is not None and one.row.visit == visit and one.row.first_seen == first
    # Every recorded transition was announced, and each id is recorded once.
    ids = [i for i, _ in other.transitions]
    assert len(ids) == len(set(ids))
    assert set(ids) <= set(other.announced)


def _event(i: str, kind: str, minutes: int, channel: str | None = None) -> ActivityEvent:
    return ActivityEvent(i, kind, BASE + timedelta(minutes=minutes), channel=channel)


def test_a_late_first_event_moves_the_entry_into_new_and_its_touchpoints():
    store = Store()
    _apply(store, [_event("b", "page_view", 10, "email"), _event("c", "email_sent", 20)])
    _apply(store, [_event("a", "page_view", 5, "paid_search")])

    (_, initial), (_, contacted) = store.transitions
    assert (initial.at, initial.triggering_event_id) == (BASE + timedelta(minutes=5), "a")
    assert contacted.time_in_previous_stage == timedelta(minutes=15)
    assert (contacted.touchpoint_event_ids, contacted.touchpoint_count) == (("a", "b"), 2)


def test_a_late_intermediate_stage_is_not_skipped():
    store = Store()
    _apply(store, [_event("f", "form_submitted", 10)])
    _apply(store, [_event("s", "email_sent", 5, "email")])  # contacted before qualified

    path = [(t.from_stage, t.to_stage, t.triggering_event_id) for _, t in store.transitions]
    assert path == [
        (None, S.NEW, "s"),
        (S.NEW, S.CONTACTED, "s"),
        (S.CONTACTED, S.QUALIFIED, "f"),
    ]
    assert store.row is not None and store.row.visit.stage is S.QUALIFIED
    # The qualified move was announced when first made and is not announced again.
    assert len(store.announced) == len(set(store.announced))


def test_a_manual_move_is_a_fixed_point():
    store = Store()
    _apply(store, [_event("a", "page_view", 0)])
    assert store.row is not None
    state = store.row
    tid, record = state.move(
        S.ENGAGED, BASE + timedelta(minutes=30), reason="call", trigger=TransitionTrigger.API
    )
    store.transitions.append((tid, record))
    state.transitions = []
    # A form submitted before the manual move arrives after it: the stages before the
    # move stay as recorded; a later touchpoint counts in engaged.
    _apply(store, [_event("f", "form_submitted", 10), _event("t", "click", 40, "social")])

    path = [(t.from_stage, t.to_stage, t.trigger) for _, t in store.transitions]
    assert path == [
        (None, S.NEW, TransitionTrigger.INITIAL),
        (S.NEW, S.ENGAGED, TransitionTrigger.API),
    ]
    assert store.row.visit.stage is S.ENGAGED
    assert store.row.visit.touchpoint_event_ids == ("t",)
