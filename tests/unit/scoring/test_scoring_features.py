"""Lead features: incremental updates, bounds, idempotency, and rebuild == incremental."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow_scoring.domain.features import (
    ActivityEvent,
    Consent,
    ConsentDecision,
    HalfLifeMismatch,
    LeadFeatures,
    Location,
    Profile,
    apply_consent,
    apply_event,
    apply_profile,
    empty_features,
    merge_features,
    needs_rebuild,
    profile_facts,
    rebuild,
)
from leadflow_scoring.domain.lifecycle import LifecycleStage
from leadflow_scoring.domain.model import (
    ACTIVE_DAYS_KEPT,
    DEFAULT_MODEL,
    RECENT_EVENTS_PER_TYPE,
)
from leadflow_scoring.domain.score import compute_score

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
HALF_LIFE = DEFAULT_MODEL.decay_half_life


def ev(
    event_id: str,
    type_: str,
    at: datetime,
    *,
    machine_generated: bool = False,
    consent_missing: bool = False,
    channel: str | None = None,
) -> ActivityEvent:
    return ActivityEvent(event_id, type_, at, machine_generated, consent_missing, channel)


def apply_all(events: list[ActivityEvent], lead: LeadFeatures | None = None) -> LeadFeatures:
    lead = lead or empty_features(DEFAULT_MODEL)
    for e in events:
        lead = apply_event(lead, e, DEFAULT_MODEL)
    return lead


def assert_same_features(a: LeadFeatures, b: LeadFeatures) -> None:
    """Equal, except decayed sums compared to float rounding (their order of addition
    differs)."""
    assert (a.profile, a.consent, a.stage) == (b.profile, b.consent, b.stage)
    x, y = a.activity, b.activity
    assert (x.half_life, x.anchor, x.active_days, x.first_touch) == (
        y.half_life,
        y.anchor,
        y.active_days,
        y.first_touch,
    )
    assert x.tallies.keys() == y.tallies.keys()
    for name, tx in x.tallies.items():
        ty = y.tallies[name]
        assert (tx.count, tx.recent) == (ty.count, ty.recent), name
        assert math.isclose(tx.decayed, ty.decayed, rel_tol=1e-12, abs_tol=1e-300), name


# --- events ----------------------------------------------------------------------------


def test_machine_generated_and_consent_missing_events_are_ignored():
    lead = empty_features(DEFAULT_MODEL)
    machine_open = ev("a", "email_opened", NOW, machine_generated=True)
    assert apply_event(lead, machine_open, DEFAULT_MODEL) is lead
    assert apply_event(lead, ev("b", "purchase", NOW, consent_missing=True), DEFAULT_MODEL) is lead


def test_a_redelivered_recent_event_counts_once():
    once = apply_all([ev("a", "purchase", NOW)])
    assert apply_event(once, ev("a", "purchase", NOW), DEFAULT_MODEL) is once
    assert once.activity.tallies["purchase"].count == 1


def test_decayed_sum_is_kept_against_the_newest_event():
    lead = apply_all([ev("new", "page_view", NOW), ev("old", "page_view", NOW - HALF_LIFE)])
    # 1 (at the anchor) + 2^-1 (one half-life older) = 1.5, whatever the order
    assert lead.activity.anchor == NOW
    assert lead.activity.tallies["page_view"].decayed == 1.5
    other_order = apply_all([ev("old", "page_view", NOW - HALF_LIFE), ev("new", "page_view", NOW)])
    assert other_order.activity.tallies["page_view"].decayed == 1.5
    # a newer event of another type rescales every sum to the new anchor
    later = apply_event(other_order, ev("x", "click", NOW + HALF_LIFE), DEFAULT_MODEL)
    assert later.activity.tallies["page_view"].decayed == 0.75
    assert later.activity.tallies["click"].decayed == 1.0


def test_recent_events_are_bounded_and_counts_keep_counting():
    n = RECENT_EVENTS_PER_TYPE + 5
    lead = apply_all([ev(f"e{i:02}", "form_submitted", NOW - i * DAY) for i in range(n)])
    tally = lead.activity.tallies["form_submitted"]
    assert tally.count == n
    assert len(tally.recent) == RECENT_EVENTS_PER_TYPE
    # the most recent ones, oldest first
    assert [eid for _, eid in tally.recent] == [
        f"e{i:02}" for i in reversed(range(RECENT_EVENTS_PER_TYPE))
    ]


def test_active_days_keep_the_latest_time_of_the_most_recent_days():
    events = [ev(f"d{i}", "page_view", NOW - i * DAY) for i in range(ACTIVE_DAYS_KEPT + 3)]
    events.append(ev("same-day-later", "click", NOW + timedelta(hours=1)))
    events.append(ev("same-day-earlier", "click", NOW - timedelta(hours=1)))
    lead = apply_all(events)
    days = lead.activity.active_days
    assert len(days) == ACTIVE_DAYS_KEPT
    assert days[-1] == (NOW.date(), NOW + timedelta(hours=1))
    assert days[0][0] == (NOW - (ACTIVE_DAYS_KEPT - 1) * DAY).date()
    assert [d for d, _ in days] == sorted(d for d, _ in days)


def test_active_day_is_the_utc_day():
    paris = timezone(timedelta(hours=1))
    at = datetime(2025, 3, 2, 0, 30, tzinfo=paris)  # 2025-03-01 23:30 UTC
    lead = apply_all([ev("a", "click", at)])
    assert lead.activity.active_days[0][0].isoformat() == "2025-03-01"


def test_first_touch_is_the_earliest_touchpoint_whatever_the_arrival_order():
    events = [
        ev("b", "page_view", NOW, channel="paid_search"),
        ev("c", "page_view", NOW - 3 * DAY),  # not a touchpoint
        ev("a", "page_view", NOW - DAY, channel="referral"),
        ev("z", "page_view", NOW - DAY, channel="direct"),  # same time: id "a" first
    ]
    lead = apply_all(events)
    assert lead.activity.first_touch == (NOW - DAY, "a", "referral")


# --- profile and consent -----------------------------------------------------------------


def test_profile_facts_keep_what_scoring_uses_and_no_contact_data():
    facts = profile_facts(
        Profile(
            email="ada@example.com",
            first_name="  ",
            phone="+15125550100",
            location=Location(region="Texas"),
            customer_type=" Enterprise ",
            interests=("", "ai"),
            segment="enterprise",
            traits={"plan": "pro", "empty": "", "none": None, "flag": False, "tags": []},
        ),
        NOW,
    )
    assert facts.present_fields == {
        "email",
        "phone",
        "location",
        "customer_type",
        "interests",
        "segment",
        "traits.plan",
        "traits.flag",
    }
    assert facts.customer_type == "Enterprise"
    assert facts.region == "Texas"
    assert "ada@example.com" not in repr(facts)
    assert "+15125550100" not in repr(facts)


def test_an_older_profile_does_not_replace_a_newer_one():
    lead = apply_profile(LeadFeatures(), Profile(industry="software"), NOW)
    older = apply_profile(lead, Profile(), NOW - DAY)
    assert older is lead
    newer = apply_profile(lead, Profile(email="a@b.c"), NOW + DAY)
    assert newer.profile.present_fields == {"email"}


def test_consent_keeps_the_newer_decision_per_purpose():
    t = NOW
    lead = apply_consent(
        LeadFeatures(), Consent(ConsentDecision(True, t), ConsentDecision(True, t))
    )
    # a stale message: email withdrawn earlier, sms granted earlier -> nothing changes
    stale = Consent(ConsentDecision(False, t - DAY), ConsentDecision(False, t - DAY))
    assert apply_consent(lead, stale) is lead
    # a later withdrawal of sms only
    later = apply_consent(lead, Consent(lead.consent.email, ConsentDecision(False, t + DAY)))
    assert (later.consent.email.granted, later.consent.sms.granted) == (True, False)
    # the same instant: the withdrawal wins in either order
    tie = Consent(ConsentDecision(False, t), ConsentDecision(True, t))
    assert apply_consent(lead, tie).consent.email.granted is False
    # "no decision" never replaces a dated decision
    assert apply_consent(lead, Consent()) is lead


# --- half-life --------------------------------------------------------------------------


def test_features_kept_with_another_half_life_must_be_rebuilt():
    lead = apply_all([ev("a", "purchase", NOW)])
    model = replace(DEFAULT_MODEL, decay_half_life=timedelta(days=7))
    assert needs_rebuild(lead, model)
    with pytest.raises(HalfLifeMismatch):
        apply_event(lead, ev("b", "purchase", NOW), model)
    with pytest.raises(HalfLifeMismatch):
        compute_score(lead, model, NOW)
    # an empty lead simply takes the model's half-life
    fresh = apply_event(LeadFeatures(), ev("b", "purchase", NOW), model)
    assert fresh.activity.half_life == timedelta(days=7)
    assert not needs_rebuild(empty_features(DEFAULT_MODEL), model)


# --- rebuild == incremental ------------------------------------------------------------

TYPES = ["page_view", "email_opened", "email_replied", "form_submitted", "purchase", "custom_x"]


@st.composite
def histories(draw: st.DrawFn) -> list[ActivityEvent]:
    n = draw(st.integers(0, 45))
    # few types and a narrow time range, so the recent lists overflow and times collide
    return [
        ActivityEvent(
            f"e{i}",
            draw(st.sampled_from(TYPES)),
            NOW + timedelta(hours=draw(st.integers(-24 * 150, 24))),
            machine_generated=draw(st.integers(0, 5)) == 0,
            consent_missing=draw(st.integers(0, 9)) == 0,
            channel=draw(st.sampled_from([None, None, "referral", "direct"])),
        )
        for i in range(n)
    ]


@settings(max_examples=200, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_rebuild_equals_incremental_application_in_any_order(events, rnd):
    shuffled = list(events)
    rnd.shuffle(shuffled)
    incremental = apply_all(shuffled)
    rebuilt = rebuild(events, DEFAULT_MODEL)
    assert_same_features(incremental, rebuilt)
    later = NOW + timedelta(days=rnd.randint(0, 120))
    a = compute_score(incremental, DEFAULT_MODEL, later)
    b = compute_score(rebuilt, DEFAULT_MODEL, later)
    assert a.total == pytest.approx(b.total, abs=0.01)


@settings(max_examples=100, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_redelivering_recent_events_changes_nothing(events, rnd):
    lead = apply_all(events)
    recent_ids = {eid for tally in lead.activity.tallies.values() for _, eid in tally.recent}
    redelivered = [e for e in events if e.event_id in recent_ids]
    rnd.shuffle(redelivered)
    assert apply_all(redelivered, lead) == lead


@settings(max_examples=100, deadline=None)
@given(histories(), st.integers(0, 45))
def test_merging_an_anonymous_history_equals_rebuilding_the_union(events, cut):
    lead_part, anonymous_part = events[:cut], events[cut:]
    merged = merge_features(
        rebuild(lead_part, DEFAULT_MODEL, stage=LifecycleStage.ENGAGED),
        rebuild(anonymous_part, DEFAULT_MODEL),
    )
    assert_same_features(merged, rebuild(events, DEFAULT_MODEL, stage=LifecycleStage.ENGAGED))
