"""Pure functions of the business reports: lifecycle funnel, insight assignment and
findings, A/B tests, posting hours, KPI changes, lead quality."""

from __future__ import annotations

from decimal import Decimal

import pytest

from leadflow_reporting.domain import kpis
from leadflow_reporting.domain.experiments import NoWinner, ab_test, posting_hours
from leadflow_reporting.domain.insights import (
    Conversion,
    Kind,
    Participant,
    Touch,
    findings,
    groups,
    participants,
)
from leadflow_reporting.domain.quality import (
    CHURNED,
    CONTACTED,
    CUSTOMER,
    LOST,
    NEW,
    OPPORTUNITY,
    QUALIFIED,
    LeadScoreRow,
    Transition,
    current_stage,
    lifecycle,
    quality,
)

H = 3_600_000_000


def test_lifecycle_counts_reach_skips_and_side_stages() -> None:
    changes = [
        Transition("a", 0, NEW, 10 * H, 0, "1"),
        Transition("a", NEW, QUALIFIED, 12 * H, 2 * H, "2"),  # skips contacted
        Transition("b", 0, NEW, 11 * H, 0, "3"),
        Transition("b", NEW, CONTACTED, 15 * H, 4 * H, "4"),
        Transition("b", CONTACTED, LOST, 16 * H, 1 * H, "5"),
        Transition("c", 0, NEW, 1 * H, 0, "6"),  # before the range: not in the cohort
        Transition("c", NEW, CONTACTED, 11 * H, 10 * H, "7"),
    ]
    answer = lifecycle(changes, 5 * H, 20 * H)
    stats = {s.stage: s for s in answer.stages}
    assert answer.cohort_size == 2
    assert stats[NEW].reached == 2
    assert stats[CONTACTED].reached == 2  # a passed it by skipping; b entered it
    assert stats[QUALIFIED].reached == 1
    assert stats[QUALIFIED].from_previous == 0.5
    assert stats[LOST].reached == 1 and stats[LOST].from_previous == 0.5
    assert stats[NEW].exited == 3
    assert stats[NEW].median_in_stage_us == 4 * H
    assert stats[LOST].current == 1 and stats[CONTACTED].current == 1
    assert (NEW, CONTACTED, 2) in answer.transitions


def test_current_stage_follows_the_chain_not_the_clock() -> None:
    rows = [
        Transition("a", 0, NEW, 50 * H, 0, "1"),
        Transition("a", NEW, CUSTOMER, 10 * H, 0, "2"),  # dated by an older purchase
    ]
    assert current_stage(rows) == CUSTOMER


def test_current_stage_goes_on_past_a_change_whose_left_stage_a_replay_changed() -> None:
    # The meeting and the purchase arrived before the form: scoring announced new ->
    # opportunity -> customer, then, replaying from the form, new -> qualified (announced)
    # and qualified -> opportunity (made again: same id, not announced again).
    rows = [
        Transition("a", 0, NEW, 0, 0, "initial"),
        Transition("a", NEW, OPPORTUNITY, 30 * H, 0, "meeting"),
        Transition("a", OPPORTUNITY, CUSTOMER, 40 * H, 0, "purchase"),
        Transition("a", NEW, QUALIFIED, 10 * H, 0, "form"),
    ]
    assert current_stage(rows) == CUSTOMER
    # An email announced as new -> contacted before the older form replayed it away.
    rows = [
        Transition("b", 0, NEW, 0, 0, "initial"),
        Transition("b", NEW, CONTACTED, 40 * H, 0, "email"),
        Transition("b", NEW, QUALIFIED, 30 * H, 0, "form"),
    ]
    assert current_stage(rows) == QUALIFIED
    # The same break, then churned by hand: the chain goes on from the stage jumped to.
    rows = [
        Transition("c", 0, NEW, 0, 0, "initial"),
        Transition("c", NEW, CUSTOMER, 40 * H, 0, "purchase"),
        Transition("c", NEW, QUALIFIED, 10 * H, 0, "form"),
        Transition("c", CUSTOMER, CHURNED, 50 * H, 0, "api"),
    ]
    assert current_stage(rows) == CHURNED


def test_first_and_last_touch_assignment() -> None:
    touches = [
        Touch(1, 1, {"source": "email"}),
        Touch(1, 5, {"source": "google"}),
        Touch(1, 9, {"source": "twitter"}),
        Touch(2, 3, {"source": ""}),
    ]
    conversions = [Conversion(1, 6, Decimal(10), "USD")]
    first = {p.subject: p for p in participants(touches, conversions, "source", False)}
    last = {p.subject: p for p in participants(touches, conversions, "source", True)}
    assert first[1].value == "email" and first[1].converted
    assert first[1].revenue == {"USD": Decimal(10)}
    assert last[1].value == "google"  # last touch before the first conversion
    assert first[2].value == "(none)" and not first[2].converted


def test_findings_name_the_gap_and_respect_the_minimum() -> None:
    people = [Participant(i, "email", i < 12) for i in range(48)]
    people += [Participant(100 + i, "twitter", False) for i in range(40)]
    people += [Participant(200 + i, "tiny", True) for i in range(3)]
    found = groups(people, 30, 0.05)
    assert [g.value for g in found] == ["email", "twitter", "tiny"]
    assert found[2].below_minimum and found[2].test is None
    texts = [f.text for f in findings(2, found, 30, 0.05)]
    assert (
        "Email converts at 25% (12/48), Twitter at 0% (0/40): the difference is significant"
        " (p = 0.001)"
    ) in texts
    zero = [f for f in findings(2, found, 30, 0.05) if f.kind is Kind.ZERO_CONVERSIONS]
    assert [f.values for f in zero] == [("twitter",)]


def test_ab_test_excludes_mixed_subjects_and_refuses_small_samples() -> None:
    exposures = [(s, 0, "control") for s in range(100)] + [(s, 0, "b") for s in range(100, 200)]
    exposures.append((5, 1, "b"))  # saw both: left out
    conversions = [(s, 5) for s in range(10)] + [(s, 5) for s in range(100, 130)]
    answer = ab_test(
        exposures,
        conversions,
        experiment="x",
        control="control",
        min_sample=50,
        confidence=0.95,
        window_us=None,
    )
    control, b = answer.variants
    assert control.control and (control.participants, control.conversions) == (99, 9)
    assert (b.participants, b.conversions) == (100, 30)
    assert answer.excluded == 1
    assert answer.winner == "b" and answer.no_winner is NoWinner.NONE
    small = ab_test(
        exposures,
        conversions,
        experiment="x",
        control="control",
        min_sample=150,
        confidence=0.95,
        window_us=None,
    )
    assert small.winner == "" and small.no_winner is NoWinner.BELOW_MINIMUM_SAMPLE
    windowed = ab_test(
        exposures,
        conversions,
        experiment="x",
        control="control",
        min_sample=1,
        confidence=0.95,
        window_us=4,
    )
    assert all(v.conversions == 0 for v in windowed.variants)
    assert windowed.no_winner is NoWinner.NOT_SIGNIFICANT


def test_posting_hours_need_the_minimum_sample() -> None:
    posts = [(9, 100.0)] + [(14, 10.0)] * 5 + [(15, 10.0)] * 5
    series = posting_hours(posts, 5)
    assert series.best_hour == 14  # hour 9 is better but below the sample; ties: earliest
    assert series.hours[9].mean == 100.0 and not series.hours[9].eligible
    assert posting_hours(posts, 6).best_hour is None


def test_kpi_change_direction_and_favour() -> None:
    up = kpis.KpiChange(kpis.CONVERSIONS, "", 12, 10)
    assert up.relative == pytest.approx(0.2) and up.favourable
    breaches = kpis.KpiChange(kpis.SLA_BREACHES, "", 12, 10)
    assert not breaches.favourable
    assert kpis.KpiChange(kpis.LEADS, "", 3, 0).relative is None


def test_quality_distribution() -> None:
    q = quality(
        "",
        [
            LeadScoreRow("m", 91.0, 1, 3),
            LeadScoreRow("m", 55.0, 5, 2),
            LeadScoreRow("m", 100.0, 1, 3),
            LeadScoreRow("m", None),
        ],
    )
    assert (q.lead_count, q.scored_count) == (4, 3)
    assert q.grades[0] == (1, 2, pytest.approx(2 / 3))
    assert q.histogram[9] == 2 and q.histogram[5] == 1
    assert q.median_score == 91.0
