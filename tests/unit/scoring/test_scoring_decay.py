"""next_decay_crossing: when an idle lead's grade or temperature first drops."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow_scoring.domain.decay import next_decay_crossing
from leadflow_scoring.domain.features import (
    ActivityEvent,
    Consent,
    ConsentDecision,
    LeadFeatures,
    Profile,
    rebuild,
)
from leadflow_scoring.domain.lifecycle import LifecycleStage
from leadflow_scoring.domain.model import DEFAULT_MODEL, BehaviouralRules, ComponentWeights
from leadflow_scoring.domain.score import Grade, Temperature, compute_score

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


def only(component: str) -> ComponentWeights:
    weights = dict.fromkeys(
        ("demographic", "behavioural", "firmographic", "engagement", "intent"), 0.0
    )
    weights[component] = 1.0
    return ComponentWeights(**weights)


def ev(event_id: str, type_: str, at: datetime) -> ActivityEvent:
    return ActivityEvent(event_id, type_, at)


def lower(lead: LeadFeatures, model, now: datetime, then: datetime) -> bool:
    a, b = compute_score(lead, model, now), compute_score(lead, model, then)
    return b.grade.rank < a.grade.rank or b.temperature.rank < a.temperature.rank


BEHAVIOUR_ONLY = replace(
    DEFAULT_MODEL,
    weights=only("behavioural"),
    behavioural=BehaviouralRules(frequency_points_per_day=0.0),
)


def test_crossing_by_decay_alone():
    lead = rebuild(
        [ev("p", "purchase", T0), ev("m", "meeting_scheduled", T0), ev("f", "form_submitted", T0)],
        BEHAVIOUR_ONLY,
    )
    start = compute_score(lead, BEHAVIOUR_ONLY, T0)
    # 50 + 20 + 15 = 85: A and hot; it drops below A (80) first, once the rounded total is
    # 79.99: 85 x 2^(-x / 30 d) < 79.995 -> x > 30 d x log2(85 / 79.995) = 30 d x 0.0875530
    # = 2.626590 d = 226,937.4 s
    assert (start.total, start.grade, start.temperature) == (85.0, Grade.A, Temperature.HOT)
    crossing = next_decay_crossing(lead, BEHAVIOUR_ONLY, T0)
    assert crossing is not None
    assert T0 + timedelta(seconds=226_937) <= crossing <= T0 + timedelta(seconds=226_939)
    assert compute_score(lead, BEHAVIOUR_ONLY, crossing).grade is Grade.B_PLUS
    assert compute_score(lead, BEHAVIOUR_ONLY, crossing - SECOND).grade is Grade.A


def test_crossing_later_in_the_idle_period_is_the_same_instant():
    lead = rebuild([ev("p", "purchase", T0), ev("m", "meeting_scheduled", T0)], BEHAVIOUR_ONLY)
    # 70: B+ and warm -> drops below 70 at 30 d x log2(70 / 69.995) = 30 d x 0.000103 = 0.0031 d
    first = next_decay_crossing(lead, BEHAVIOUR_ONLY, T0)
    assert first is not None
    assert first - T0 < timedelta(minutes=5)
    # asked again from the new (B) state: next drop below 60 at 30 d x log2(70/59.995)
    # = 30 d x 0.22251 = 6.6753 d
    second = next_decay_crossing(lead, BEHAVIOUR_ONLY, first)
    assert second is not None
    assert abs((second - T0) - timedelta(days=6.6753)) < timedelta(minutes=2)
    assert compute_score(lead, BEHAVIOUR_ONLY, second).grade is Grade.C_PLUS


def test_crossing_when_replies_leave_their_window():
    model = replace(DEFAULT_MODEL, weights=only("intent"))
    replies = [ev(f"r{i}", "email_replied", T0 + i * timedelta(hours=1)) for i in range(3)]
    lead = rebuild(replies, model, stage=LifecycleStage.QUALIFIED)
    # stage qualified 20 + 3 replies x 10 = 50: C+ and warm. The first reply leaves the 14-day
    # window at T0 + 14 d exactly: 20 + 20 = 40, C and cold.
    assert compute_score(lead, model, T0 + 2 * timedelta(hours=1)).total == 50.0
    assert next_decay_crossing(lead, model, T0 + 3 * timedelta(hours=1)) == T0 + 14 * DAY


def test_crossing_when_the_last_activity_ages_into_the_next_recency_tier():
    model = replace(DEFAULT_MODEL, weights=only("engagement"))
    lead = rebuild([ev("c", "click", T0)], model, consent=Consent(email=ConsentDecision(True, T0)))
    # recency < 7 d 40 + email consent 30 = 70: B+ and warm; at T0 + 7 d 30 + 30 = 60: B
    assert next_decay_crossing(lead, model, T0 + DAY) == T0 + 7 * DAY


def test_decay_starts_at_an_event_dated_after_now():
    lead = rebuild(
        [ev("p", "purchase", T0 + DAY), ev("m", "meeting_scheduled", T0 + DAY)], BEHAVIOUR_ONLY
    )
    crossing = next_decay_crossing(lead, BEHAVIOUR_ONLY, T0)
    assert crossing is not None
    assert T0 + DAY < crossing < T0 + DAY + timedelta(minutes=5)


def test_no_crossing_for_a_lead_already_d_and_cold():
    lead = rebuild([ev("v", "page_view", T0)], DEFAULT_MODEL)
    assert compute_score(lead, DEFAULT_MODEL, T0).grade is Grade.D
    assert next_decay_crossing(lead, DEFAULT_MODEL, T0) is None


def test_no_crossing_when_nothing_decays():
    model = replace(DEFAULT_MODEL, weights=only("firmographic"))
    lead = rebuild([ev("p", "purchase", T0)], model, profile=Profile(customer_type="enterprise"))
    # base 50 + enterprise 15 = 65: B and warm forever
    assert compute_score(lead, model, T0).grade is Grade.B
    assert next_decay_crossing(lead, model, T0) is None


# --- property: the returned time is the first drop ------------------------------------

TYPES = ["purchase", "meeting_scheduled", "form_submitted", "email_replied", "page_view"]


@st.composite
def leads(draw: st.DrawFn) -> LeadFeatures:
    events = [
        ev(f"e{i}", draw(st.sampled_from(TYPES)), T0 - timedelta(hours=draw(st.integers(0, 2400))))
        for i in range(draw(st.integers(0, 12)))
    ]
    consent = Consent(email=ConsentDecision(draw(st.booleans()), T0 - 400 * DAY))
    profile = Profile(
        email=draw(st.sampled_from(["", "a@b.c"])),
        customer_type=draw(st.sampled_from(["", "enterprise"])),
        lead_source=draw(st.sampled_from(["", "referral"])),
    )
    stage = draw(st.sampled_from(list(LifecycleStage)))
    return rebuild(events, DEFAULT_MODEL, profile=profile, consent=consent, stage=stage)


@settings(max_examples=60, deadline=None)
@given(leads())
def test_returned_time_is_the_first_drop(lead):
    model = DEFAULT_MODEL
    crossing = next_decay_crossing(lead, model, T0)
    if crossing is None:
        for days in (1, 7, 14, 30, 90, 365, 3650):
            assert not lower(lead, model, T0, T0 + days * DAY)
        return
    assert crossing > T0
    assert lower(lead, model, T0, crossing)
    span = crossing - T0 - SECOND
    for k in range(1, 21):
        assert not lower(lead, model, T0, T0 + span * (k / 20))
