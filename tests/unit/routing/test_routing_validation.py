"""Configuration validation: every error names the item (rule by index and id) and why."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from leadflow_routing.domain.config import (
    Brand,
    BreachAction,
    MauticSink,
    NurtureSequence,
    NurtureStep,
    Owner,
    RetryPolicy,
    RoutingConfig,
    Rule,
    Sink,
    Sla,
    Strategy,
    WebhookSink,
    default_sequences,
    with_defaults,
)
from leadflow_routing.domain.document import load_yaml
from leadflow_routing.domain.snapshot import Segment
from leadflow_routing.domain.validation import validate_config

EXAMPLE = Path(__file__).parents[3] / "examples" / "portfolio-371minds.yaml"
BRAND = Brand(id="modumind", owners=(Owner(id="ana"), Owner(id="bo")), fallback_owner_id="ana")
GOOD_RULE = Rule(
    id="r", condition="true", target_brand_id="modumind", strategy=Strategy.ROUND_ROBIN
)


def errors(config: RoutingConfig) -> list[str]:
    return [str(v) for v in validate_config(config)[0]]


def with_rule(**changes: object) -> RoutingConfig:
    return RoutingConfig(
        brands=(BRAND,), rules=(GOOD_RULE, replace(GOOD_RULE, id="hot-enterprise", **changes))
    )  # type: ignore[arg-type]


def test_the_example_portfolio_is_valid() -> None:
    config = load_yaml(EXAMPLE.read_text())
    assert validate_config(config) == ([], [])
    assert {b.id for b in config.brands} == {
        "modumind",
        "stacksense",
        "epicquest",
        "ikid",
        "vision2results",
    }


def test_bad_cel_names_the_rule_and_the_expression_error() -> None:
    assert errors(with_rule(condition="lead.scor.total > 1")) == [
        "config.rules[1] (id \"hot-enterprise\").condition: undeclared reference to 'lead.scor'"
    ]
    (syntax,) = errors(with_rule(condition="lead.score.total >"))
    assert syntax.startswith(
        'config.rules[1] (id "hot-enterprise").condition: syntax error at line 1'
    )


def test_unknown_brand_owner_and_sequence() -> None:
    assert errors(with_rule(target_brand_id="nope")) == [
        "config.rules[1] (id \"hot-enterprise\").target_brand_id: unknown brand 'nope'"
    ]
    assert errors(with_rule(strategy=Strategy.FIXED_OWNER, fixed_owner_id="zed")) == [
        "config.rules[1] (id \"hot-enterprise\").fixed_owner_id: unknown owner 'zed' in brand 'modumind'"
    ]
    assert errors(with_rule(nurture_sequence_id="vip")) == [
        "config.rules[1] (id \"hot-enterprise\").nurture_sequence_id: unknown nurture sequence 'vip'"
    ]
    # the default sequences can always be named
    assert errors(with_rule(nurture_sequence_id="smb-default")) == []


def test_strategy_and_fixed_owner_must_agree() -> None:
    assert errors(with_rule(strategy=Strategy.UNSPECIFIED))[0].endswith(
        "strategy: one of fixed_owner, round_robin, weighted, least_loaded"
    )
    assert "only for the fixed_owner strategy" in errors(with_rule(fixed_owner_id="ana"))[0]
    assert (
        "required for the fixed_owner strategy"
        in errors(with_rule(strategy=Strategy.FIXED_OWNER))[0]
    )


def test_duplicate_and_missing_ids() -> None:
    config = RoutingConfig(
        brands=(BRAND, BRAND), rules=(GOOD_RULE, GOOD_RULE, replace(GOOD_RULE, id=""))
    )
    assert errors(config) == [
        "config.brands[1] (id \"modumind\").id: brand id 'modumind' is used twice",
        "config.rules[1] (id \"r\").id: rule id 'r' is used twice",
        "config.rules[2].id: must not be empty",
    ]


def test_weights_capacity_and_fallback() -> None:
    brand = Brand(
        id="modumind",
        owners=(Owner(id="ana", weight=1001), Owner(id="bo", weight=-1, daily_capacity=-2)),
        fallback_owner_id="cy",
    )
    assert errors(RoutingConfig(brands=(brand,))) == [
        'config.brands[0] (id "modumind").owners[0].weight: must be in 1..1000 (0 means 1)',
        'config.brands[0] (id "modumind").owners[1].weight: must be in 1..1000 (0 means 1)',
        'config.brands[0] (id "modumind").owners[1].daily_capacity: must not be negative (0: no limit)',
        "config.brands[0] (id \"modumind\").fallback_owner_id: unknown owner 'cy' (not one of the brand's owners)",
    ]


def test_brand_ids_are_slugs_and_at_least_one_brand() -> None:
    assert errors(RoutingConfig()) == ["config.brands: at least one brand is required"]
    assert "lower case letters" in errors(RoutingConfig(brands=(Brand(id="ModuMind"),)))[0]


def test_sinks() -> None:
    sinks = [
        Sink(webhook=WebhookSink(url="http://crm.example", secret_ref="")),
        Sink(
            mautic=MauticSink(base_url="https://m.example", credentials_ref="c", segment_id="seg"),
            retry=RetryPolicy(max_attempts=101),
        ),
        Sink(
            webhook=WebhookSink(
                url="http://localhost:9/x", secret_ref="s", timeout=timedelta(seconds=61)
            )
        ),
    ]
    config = RoutingConfig(brands=tuple(Brand(id=f"b{i}", sink=s) for i, s in enumerate(sinks)))
    assert errors(config) == [
        'config.brands[0] (id "b0").sink.webhook.url: must be an https URL (http only for localhost)',
        'config.brands[0] (id "b0").sink.webhook.secret_ref: must name the signing secret',
        'config.brands[1] (id "b1").sink.mautic.segment_id: must be a Mautic numeric id',
        'config.brands[1] (id "b1").sink.retry.max_attempts: must be in 1..100 (0: 20)',
        'config.brands[2] (id "b2").sink.webhook.timeout: must be at most 60 s (unset: 10 s)',
    ]


def test_sequences_steps_increase_and_one_per_segment() -> None:
    steps = (NurtureStep(day_offset=3, template="a"), NurtureStep(day_offset=3, template=""))
    config = RoutingConfig(
        brands=(BRAND,),
        nurture_sequences=(
            NurtureSequence(id="s1", segment=Segment.SMB, steps=steps),
            NurtureSequence(id="s2", segment=Segment.SMB),
        ),
    )
    assert errors(config) == [
        'config.nurture_sequences[0] (id "s1").steps[1].day_offset: must be greater than the previous step\'s (3)',
        'config.nurture_sequences[0] (id "s1").steps[1].template: must name a template',
        "config.nurture_sequences[1] (id \"s2\").segment: segment smb already has sequence 's1'",
        'config.nurture_sequences[1] (id "s2").steps: at least one step is required',
    ]


def test_sla_needs_an_action_and_time_zone_must_exist() -> None:
    config = RoutingConfig(
        brands=(BRAND,), sla=Sla(acknowledge_within=timedelta(hours=4)), time_zone="Mars/Olympus"
    )
    assert errors(config) == [
        "config.time_zone: unknown IANA time zone 'Mars/Olympus'",
        "config.sla.breach_action: required when acknowledge_within is set",
    ]
    ok = replace(
        config,
        time_zone="Europe/Berlin",
        sla=Sla(acknowledge_within=timedelta(hours=4), breach_action=BreachAction.REASSIGN),
    )
    assert errors(ok) == []


def test_warnings_unreachable_rules_unused_sequences_ownerless_brands() -> None:
    config = RoutingConfig(
        brands=(BRAND, Brand(id="empty")),
        rules=(replace(GOOD_RULE, id="all", condition=""), replace(GOOD_RULE, id="late")),
        nurture_sequences=(
            NurtureSequence(id="unused", steps=(NurtureStep(day_offset=1, template="x"),)),
        ),
    )
    violations, warnings = validate_config(config)
    assert violations == []
    assert [(w.field, w.message) for w in warnings] == [
        ('config.brands[1] (id "empty")', "brand has no owner: leads go to its sink unowned"),
        (
            'config.rules[1] (id "late")',
            "unreachable: rule all (rules[0]) matches every lead and stops",
        ),
        ('config.nurture_sequences[0] (id "unused")', "sequence not used by any rule"),
    ]


def test_default_sequences_enterprise_smb_startup_days_1_3_6_10_15() -> None:
    sequences = default_sequences()
    assert [s.id for s in sequences] == ["enterprise-default", "smb-default", "startup-default"]
    for sequence in sequences:
        assert [(s.day_offset, s.template) for s in sequence.steps] == [
            (1, "welcome"),
            (3, "value-proposition"),
            (6, "case-study"),
            (10, "demo-offer"),
            (15, "final-reminder"),
        ]
    filled = with_defaults(
        RoutingConfig(
            brands=(BRAND,),
            nurture_sequences=(
                NurtureSequence(
                    id="mine", segment=Segment.SMB, steps=(NurtureStep(day_offset=2, template="x"),)
                ),
            ),
        )
    )
    assert [s.id for s in filled.nurture_sequences] == [
        "mine",
        "enterprise-default",
        "startup-default",
    ]
    assert filled.time_zone == "UTC"


@pytest.mark.parametrize("count", [1000, 1001])
def test_at_most_1000_rules(count: int) -> None:
    rules = tuple(replace(GOOD_RULE, id=f"r{i}", condition="") for i in range(count))
    assert any(
        "at most 1000 rules" in e for e in errors(RoutingConfig(brands=(BRAND,), rules=rules))
    ) is (count > 1000)
