"""Lifecycle: the transition table over every pair of stages, rules, and the records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leadflow_scoring.domain.lifecycle import (
    MAX_TOUCHPOINT_IDS,
    LifecycleRules,
    LifecycleStage,
    StageRule,
    StageVisit,
    TransitionRefused,
    TransitionTrigger,
    auto_transition,
    check_transition,
    enter_initial,
    record_touchpoint,
    rule_reason,
    time_in_stage,
    transition,
)

S = LifecycleStage
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)

# Rows: from; columns: to, in the order below. Y allowed, n refused, - same stage (refused).
ORDER = [S.NEW, S.CONTACTED, S.QUALIFIED, S.ENGAGED, S.OPPORTUNITY, S.CUSTOMER, S.CHURNED, S.LOST]
TABLE = """
            new con qua eng opp cus chu los
new          -   Y   Y   Y   Y   Y   Y   Y
contacted    n   -   Y   Y   Y   Y   Y   Y
qualified    n   n   -   Y   Y   Y   Y   Y
engaged      n   n   n   -   Y   Y   Y   Y
opportunity  n   n   n   n   -   Y   Y   Y
customer     n   n   n   n   n   -   Y   Y
churned      Y   Y   Y   Y   Y   Y   -   Y
lost         Y   Y   Y   Y   Y   Y   Y   -
"""


def _table() -> list[tuple[LifecycleStage, LifecycleStage, str]]:
    rows = [line.split() for line in TABLE.strip().splitlines()[1:]]
    return [(S(row[0]), ORDER[j], mark) for row in rows for j, mark in enumerate(row[1:])]


@pytest.mark.parametrize(("current", "target", "mark"), _table())
def test_transition_table(current, target, mark):
    refusal = check_transition(current, target)
    if mark == "Y":
        assert refusal is None
    else:
        assert refusal is not None
        assert refusal.field == "to_stage"
        assert refusal.code == ("SAME_STAGE" if mark == "-" else "BACKWARDS")


def test_table_covers_every_pair():
    assert len(_table()) == len(S) ** 2


RULES = LifecycleRules()


@pytest.mark.parametrize(
    ("current", "event_type", "expected"),
    [
        (S.NEW, "email_sent", S.CONTACTED),  # the first outbound email
        (S.CONTACTED, "email_sent", None),  # later ones do nothing
        (S.QUALIFIED, "email_sent", None),  # never backwards
        (S.NEW, "form_submitted", S.QUALIFIED),
        (S.CONTACTED, "form_submitted", S.QUALIFIED),
        (S.NEW, "meeting_scheduled", S.OPPORTUNITY),  # skipping stages
        (S.OPPORTUNITY, "purchase", S.CUSTOMER),
        (S.CUSTOMER, "purchase", None),
        (S.CHURNED, "email_sent", S.CONTACTED),  # re-activation
        (S.LOST, "purchase", S.CUSTOMER),
        (S.NEW, "page_view", None),
    ],
)
def test_default_rules(current, event_type, expected):
    assert auto_transition(current, event_type, RULES) is expected


def test_when_one_event_matches_several_rules_the_latest_stage_wins():
    rules = LifecycleRules(
        (
            StageRule("demo_booked", S.ENGAGED),
            StageRule("demo_booked", S.OPPORTUNITY),
            StageRule("demo_booked", S.QUALIFIED),
            StageRule("demo_booked", S.LOST),  # refused by validation; never applied
        )
    )
    assert auto_transition(S.NEW, "demo_booked", rules) is S.OPPORTUNITY
    assert auto_transition(S.OPPORTUNITY, "demo_booked", rules) is None


def test_rule_reason():
    assert rule_reason("form_submitted", S.QUALIFIED) == "rule: form_submitted -> qualified"


def test_initial_entry():
    record, visit = enter_initial(NOW, "e1")
    assert record.from_stage is None
    assert record.to_stage is S.NEW
    assert (record.reason, record.trigger, record.triggering_event_id) == (
        "first seen",
        TransitionTrigger.INITIAL,
        "e1",
    )
    assert record.time_in_previous_stage == timedelta(0)
    assert visit == StageVisit(S.NEW, NOW)


def test_transition_records_time_and_touchpoints_of_the_previous_stage():
    _, visit = enter_initial(NOW, "e1")
    visit = record_touchpoint(visit, "t2", NOW + 2 * HOUR)
    visit = record_touchpoint(visit, "t1", NOW + HOUR)  # late arrival: listed oldest first
    visit = record_touchpoint(visit, "t1", NOW + HOUR)  # redelivered: counted once
    record, new_visit = transition(
        visit,
        S.QUALIFIED,
        NOW + 5 * HOUR,
        reason=rule_reason("form_submitted", S.QUALIFIED),
        trigger=TransitionTrigger.RULE,
        triggering_event_id="f1",
    )
    assert (record.from_stage, record.to_stage) == (S.NEW, S.QUALIFIED)
    assert record.time_in_previous_stage == 5 * HOUR
    assert record.touchpoint_event_ids == ("t1", "t2")
    assert record.touchpoint_count == 2
    assert record.at == NOW + 5 * HOUR
    assert new_visit == StageVisit(S.QUALIFIED, NOW + 5 * HOUR, entered_by="f1")
    assert time_in_stage(new_visit, NOW + 7 * HOUR) == 2 * HOUR


def test_touchpoint_ids_are_bounded_but_counted():
    visit = StageVisit(S.NEW, NOW)
    n = MAX_TOUCHPOINT_IDS + 20
    for i in range(n):
        visit = record_touchpoint(visit, f"t{i:03}", NOW + i * HOUR)
    visit = record_touchpoint(visit, "ancient", NOW)  # older than every listed id
    assert visit.touchpoint_count == n + 1
    assert len(visit.touchpoints) == MAX_TOUCHPOINT_IDS
    assert visit.touchpoint_event_ids[0] == "t020"
    assert visit.touchpoint_event_ids[-1] == f"t{n - 1:03}"


def test_touchpoints_before_the_stage_was_entered_are_not_counted():
    visit = StageVisit(S.ENGAGED, NOW)
    assert record_touchpoint(visit, "old", NOW - HOUR) is visit


def test_an_illegal_transition_is_refused():
    with pytest.raises(TransitionRefused) as refused:
        transition(
            StageVisit(S.CUSTOMER, NOW),
            S.QUALIFIED,
            NOW,
            reason="by hand",
            trigger=TransitionTrigger.API,
        )
    assert refused.value.violation.code == "BACKWARDS"


def test_a_late_rule_event_moves_the_lead_as_of_the_stage_entry():
    visit = StageVisit(S.CONTACTED, NOW)
    record, new_visit = transition(
        visit,
        S.QUALIFIED,
        NOW - 3 * HOUR,  # a backfilled form submitted before the lead was contacted
        reason=rule_reason("form_submitted", S.QUALIFIED),
        trigger=TransitionTrigger.RULE,
        triggering_event_id="f1",
    )
    assert record.at == NOW
    assert record.time_in_previous_stage == timedelta(0)
    assert new_visit.entered_at == NOW


def test_api_transition_keeps_actor_and_reason():
    record, _ = transition(
        StageVisit(S.OPPORTUNITY, NOW),
        S.LOST,
        NOW + HOUR,
        reason="went with a competitor",
        trigger=TransitionTrigger.API,
        actor="key_123",
    )
    assert (record.reason, record.actor, record.trigger) == (
        "went with a competitor",
        "key_123",
        TransitionTrigger.API,
    )
    assert record.triggering_event_id == ""


def test_time_in_stage_is_never_negative():
    assert time_in_stage(StageVisit(S.NEW, NOW), NOW - HOUR) == timedelta(0)
