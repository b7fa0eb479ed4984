"""The built-in model holds DESIGN.md's numbers; validation names the bad field."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from leadflow_scoring.domain.lifecycle import LifecycleRules, LifecycleStage, StageRule
from leadflow_scoring.domain.model import (
    DEFAULT_MODEL,
    BehaviouralRules,
    ComponentWeights,
    DemographicRules,
    EngagementRules,
    FirmographicRules,
    GradeThresholds,
    IntentRules,
    RecencyTier,
    ScoringModel,
    StageBonus,
    TargetLocation,
    TemperatureThresholds,
    ValueTier,
    validate_model,
)

M = DEFAULT_MODEL


def test_default_model_has_the_design_numbers():
    assert ScoringModel() == M
    assert M.version == 0
    w = M.weights
    assert (w.demographic, w.behavioural, w.firmographic, w.engagement, w.intent) == (
        0.20,
        0.25,
        0.15,
        0.25,
        0.15,
    )
    assert dict(M.demographic.field_points) == {
        "email": 15,
        "first_name": 10,
        "last_name": 10,
        "phone": 15,
        "location": 10,
        "customer_type": 20,
        "industry": 10,
        "interests": 10,
    }
    assert dict(M.behavioural.event_points) == {
        "email_opened": 2,
        "email_clicked": 5,
        "email_replied": 10,
        "form_submitted": 15,
        "page_view": 1,
        "content_downloaded": 8,
        "meeting_scheduled": 20,
        "purchase": 50,
    }
    b = M.behavioural
    assert (b.frequency_points_per_day, b.frequency_max_points, b.frequency_window) == (
        1,
        10,
        timedelta(days=30),
    )
    f = M.firmographic
    assert (f.base_points, f.target_locations, f.target_location_points) == (50, (), 20)
    assert [(t.name, t.points) for t in f.customer_type_tiers] == [
        ("high", 15),
        ("mid", 10),
        ("low", 5),
    ]
    assert [(t.name, t.points) for t in f.source_tiers] == [("high", 15), ("medium", 10)]
    assert f.source_tiers[0].values == ("referral", "partner")
    e = M.engagement
    assert [(t.max_age.days, t.points) for t in e.recency_tiers] == [(7, 40), (30, 30), (90, 20)]
    assert (e.recency_default_points, e.email_consent_points, e.sms_consent_points) == (10, 30, 15)
    i = M.intent
    assert (i.high_intent_event_points, i.high_intent_max_points, i.high_intent_window.days) == (
        15,
        50,
        30,
    )
    assert (i.reply_points, i.reply_max_points, i.reply_window.days) == (10, 30, 14)
    assert i.stage_points == {
        LifecycleStage.OPPORTUNITY: 40,
        LifecycleStage.ENGAGED: 30,
        LifecycleStage.QUALIFIED: 20,
    }
    g = M.grade_thresholds
    assert (g.a_plus, g.a, g.b_plus, g.b, g.c_plus, g.c) == (90, 80, 70, 60, 50, 40)
    assert (M.temperature_thresholds.hot, M.temperature_thresholds.warm) == (75, 50)
    assert M.decay_half_life == timedelta(days=30)
    assert M.lifecycle.by_event_type == {
        "email_sent": LifecycleStage.CONTACTED,
        "form_submitted": LifecycleStage.QUALIFIED,
        "meeting_scheduled": LifecycleStage.OPPORTUNITY,
        "purchase": LifecycleStage.CUSTOMER,
    }


def test_default_model_is_valid():
    assert validate_model(M) == []


def test_mappings_are_copied_and_read_only():
    points = {"purchase": 50.0}
    rules = BehaviouralRules(event_points=points)
    points["purchase"] = 1.0
    assert rules.event_points["purchase"] == 50.0
    with pytest.raises(TypeError):
        rules.event_points["purchase"] = 2.0  # type: ignore[index]


def test_tier_lookup_is_case_insensitive_and_first_tier_wins():
    rules = FirmographicRules(
        customer_type_tiers=(ValueTier("a", ("SMB",), 7.0), ValueTier("b", ("smb",), 3.0))
    )
    assert rules.customer_type_lookup["smb"].name == "a"


BAD = [
    (
        replace(M, weights=ComponentWeights(intent=0.10)),
        "model.weights",
        "SUM_NOT_ONE",
        "must sum to 1 (got 0.95)",
    ),
    (
        replace(M, weights=ComponentWeights(demographic=1.2)),
        "model.weights.demographic",
        "OUT_OF_RANGE",
        "0..1",
    ),
    (
        replace(M, grade_thresholds=GradeThresholds(a=95.0)),
        "model.grade_thresholds.a",
        "NOT_ORDERED",
        "must be less than a_plus (90)",
    ),
    (
        replace(M, grade_thresholds=GradeThresholds(b=70.0)),
        "model.grade_thresholds.b",
        "NOT_ORDERED",
        "must be less than b_plus (70)",
    ),
    (
        replace(M, grade_thresholds=GradeThresholds(a_plus=101.0)),
        "model.grade_thresholds.a_plus",
        "OUT_OF_RANGE",
        "0..100",
    ),
    (
        replace(M, temperature_thresholds=TemperatureThresholds(warm=80.0)),
        "model.temperature_thresholds.warm",
        "NOT_ORDERED",
        "less than hot",
    ),
    (
        replace(M, decay_half_life=timedelta(0)),
        "model.decay_half_life",
        "NOT_POSITIVE",
        "positive",
    ),
    (
        replace(M, behavioural=BehaviouralRules(event_points={"purchase": -5.0})),
        "model.behavioural.event_points.purchase",
        "NEGATIVE",
        "negative",
    ),
    (
        replace(M, behavioural=BehaviouralRules(event_points={"purchase": float("nan")})),
        "model.behavioural.event_points.purchase",
        "NOT_FINITE",
        "finite",
    ),
    (
        replace(M, behavioural=BehaviouralRules(event_points={"": 1.0})),
        "model.behavioural.event_points.",
        "REQUIRED",
        "empty",
    ),
    (
        replace(M, behavioural=BehaviouralRules(frequency_window=timedelta(0))),
        "model.behavioural.frequency_window",
        "NOT_POSITIVE",
        "positive",
    ),
    (
        replace(M, behavioural=BehaviouralRules(frequency_max_points=150.0)),
        "model.behavioural.frequency_max_points",
        "CAP_UNREACHABLE",
        "at most 100 x",
    ),
    (
        replace(M, demographic=DemographicRules(field_points={"shoe_size": 5.0})),
        "model.demographic.field_points.shoe_size",
        "UNKNOWN_FIELD",
        "not a LeadProfile field",
    ),
    (
        replace(M, demographic=DemographicRules(field_points={"traits.": 5.0})),
        "model.demographic.field_points.traits.",
        "UNKNOWN_FIELD",
        "traits.<key>",
    ),
    (
        replace(M, firmographic=FirmographicRules(target_locations=(TargetLocation(),))),
        "model.firmographic.target_locations[0]",
        "REQUIRED",
        "at least one",
    ),
    (
        replace(M, firmographic=FirmographicRules(target_locations=(TargetLocation("USA"),))),
        "model.firmographic.target_locations[0].country",
        "INVALID_COUNTRY",
        "alpha-2",
    ),
    (
        replace(M, firmographic=FirmographicRules(source_tiers=(ValueTier("high", (), 5.0),))),
        "model.firmographic.source_tiers[0].values",
        "REQUIRED",
        "at least one value",
    ),
    (
        replace(M, firmographic=FirmographicRules(base_points=-1.0)),
        "model.firmographic.base_points",
        "NEGATIVE",
        "negative",
    ),
    (
        replace(
            M,
            engagement=EngagementRules(
                recency_tiers=(
                    RecencyTier(timedelta(days=30), 30.0),
                    RecencyTier(timedelta(days=7), 40.0),
                )
            ),
        ),
        "model.engagement.recency_tiers[1].max_age",
        "NOT_ORDERED",
        "greater than recency_tiers[0].max_age",
    ),
    (
        replace(
            M,
            engagement=EngagementRules(
                stage_bonuses=(
                    StageBonus(LifecycleStage.CONTACTED, 5.0),
                    StageBonus(LifecycleStage.CONTACTED, 6.0),
                )
            ),
        ),
        "model.engagement.stage_bonuses[1].stage",
        "DUPLICATE",
        "more than once",
    ),
    (
        replace(M, intent=IntentRules(high_intent_max_points=200.0)),
        "model.intent.high_intent_max_points",
        "CAP_UNREACHABLE",
        "at most 10 x",
    ),
    (
        replace(M, intent=IntentRules(reply_window=timedelta(seconds=-1))),
        "model.intent.reply_window",
        "NOT_POSITIVE",
        "positive",
    ),
    (
        replace(
            M,
            lifecycle=LifecycleRules((StageRule("email_bounced", LifecycleStage.LOST),)),
        ),
        "model.lifecycle.stage_rules[0].stage",
        "NOT_ALLOWED",
        "lost",
    ),
    (
        replace(M, description="x" * 1001),
        "model.description",
        "TOO_LONG",
        "1000",
    ),
]


@pytest.mark.parametrize(("model", "field", "code", "reason"), BAD, ids=[b[1] for b in BAD])
def test_validation_names_the_bad_field(model, field, code, reason):
    violations = validate_model(model)
    assert [(v.field, v.code) for v in violations] == [(field, code)]
    assert reason in violations[0].reason


def test_validation_reports_every_problem():
    model = replace(
        M,
        weights=ComponentWeights(intent=0.5),
        decay_half_life=timedelta(0),
        temperature_thresholds=TemperatureThresholds(hot=40.0),
    )
    assert {v.field for v in validate_model(model)} == {
        "model.weights",
        "model.decay_half_life",
        "model.temperature_thresholds.warm",
    }


def test_custom_event_names_and_trait_keys_are_allowed():
    model = replace(
        M,
        behavioural=BehaviouralRules(event_points={"trial_extended": 12.0}),
        demographic=DemographicRules(field_points={"traits.plan": 5.0, "company": 5.0}),
        intent=IntentRules(high_intent_event_types=("trial_extended", "webinar_attended")),
    )
    assert validate_model(model) == []


def test_a_cap_with_zero_points_per_item_is_not_checked():
    model = replace(M, intent=IntentRules(reply_points=0.0, reply_max_points=30.0))
    assert validate_model(model) == []


def test_weights_within_tolerance_are_accepted():
    model = replace(
        M,
        weights=ComponentWeights(
            demographic=0.1, behavioural=0.2, firmographic=0.3, engagement=0.3, intent=0.1
        ),
    )
    assert validate_model(model) == []


def test_the_field_prefix_can_be_chosen():
    model = replace(M, decay_half_life=timedelta(0))
    assert validate_model(model, prefix="scoring_model")[0].field == "scoring_model.decay_half_life"
