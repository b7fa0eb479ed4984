"""SLA breaches, nurture schedules and stops, webhook signatures, retry backoff, YAML."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadflow_routing.domain.backoff import backoff_ceiling, exhausted, next_delay
from leadflow_routing.domain.config import (
    Brand,
    BreachAction,
    NurtureChannel,
    NurtureSequence,
    NurtureStep,
    Owner,
    RetryPolicy,
    Sla,
    Strategy,
    default_sequences,
)
from leadflow_routing.domain.document import DocumentError, dump_yaml, load_yaml
from leadflow_routing.domain.nurture import (
    StopReason,
    schedule,
    stop_for_consent,
    stop_for_event,
    stop_for_stage,
)
from leadflow_routing.domain.signing import sign, verify
from leadflow_routing.domain.sla import AssignmentState, acknowledge_by, decide_breach, is_breached
from leadflow_routing.domain.snapshot import LifecycleStage
from leadflow_routing.domain.strategies import BrandState, ChoiceReason

NOW = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
EXAMPLE = Path(__file__).parents[3] / "examples" / "portfolio-371minds.yaml"
BRAND = Brand(
    id="b", owners=(Owner(id="ana"), Owner(id="bo"), Owner(id="head")), fallback_owner_id="head"
)
REASSIGN = Sla(acknowledge_within=timedelta(hours=4), breach_action=BreachAction.REASSIGN)


def test_deadline_and_breach() -> None:
    deadline = acknowledge_by(REASSIGN, NOW)
    assert deadline == NOW + timedelta(hours=4)
    assert acknowledge_by(Sla(), NOW) is None
    assert not is_breached(AssignmentState.ASSIGNED, deadline, NOW + timedelta(hours=3))
    assert is_breached(AssignmentState.ASSIGNED, deadline, NOW + timedelta(hours=4))
    assert not is_breached(AssignmentState.ACKNOWLEDGED, deadline, NOW + timedelta(days=1))


def test_reassign_goes_to_the_next_free_owner_never_a_breacher() -> None:
    outcome = decide_breach(
        REASSIGN, BRAND, Strategy.ROUND_ROBIN, "", frozenset(), "ana", BrandState(), NOW
    )
    assert outcome.resulting_state is AssignmentState.REASSIGNED
    assert outcome.selection is not None and outcome.selection.owner.id == "bo"  # type: ignore[union-attr]
    second = decide_breach(
        REASSIGN, BRAND, Strategy.ROUND_ROBIN, "", frozenset({"ana"}), "bo", BrandState(), NOW
    )
    assert second.selection.owner.id == "head"  # type: ignore[union-attr]


def test_reassign_of_a_fixed_owner_goes_to_the_fallback_and_breaches_when_nobody_is_left() -> None:
    outcome = decide_breach(
        REASSIGN, BRAND, Strategy.FIXED_OWNER, "ana", frozenset(), "ana", BrandState(), NOW
    )
    assert outcome.selection is not None and outcome.selection.reason is ChoiceReason.FALLBACK
    stuck = decide_breach(
        REASSIGN, BRAND, Strategy.FIXED_OWNER, "head", frozenset(), "head", BrandState(), NOW
    )
    assert stuck.resulting_state is AssignmentState.BREACHED and stuck.selection is None


def test_escalate() -> None:
    sla = Sla(
        acknowledge_within=timedelta(hours=1),
        breach_action=BreachAction.ESCALATE,
        escalation_owner_id="head",
    )
    outcome = decide_breach(
        sla, BRAND, Strategy.ROUND_ROBIN, "", frozenset(), "ana", BrandState(), NOW
    )
    assert outcome.resulting_state is AssignmentState.ESCALATED
    assert outcome.brand_state.load("head").open_assignments == 1
    assert (
        decide_breach(
            sla, BRAND, Strategy.ROUND_ROBIN, "", frozenset(), "head", BrandState(), NOW
        ).resulting_state
        is AssignmentState.BREACHED
    )


def test_schedule_is_enrolled_at_plus_days() -> None:
    steps = schedule(default_sequences()[1], NOW)
    assert [(s.step_index, s.due_at - NOW, s.template) for s in steps] == [
        (0, timedelta(days=1), "welcome"),
        (1, timedelta(days=3), "value-proposition"),
        (2, timedelta(days=6), "case-study"),
        (3, timedelta(days=10), "demo-offer"),
        (4, timedelta(days=15), "final-reminder"),
    ]
    assert {s.channel for s in steps} == {NurtureChannel.EMAIL}


@pytest.mark.parametrize(
    ("name", "conversion", "reason"),
    [
        ("email_replied", False, StopReason.REPLIED),
        ("sms_replied", False, StopReason.REPLIED),
        ("purchase", False, StopReason.CONVERTED),
        ("custom_goal", True, StopReason.CONVERTED),
        ("unsubscribe", False, StopReason.UNSUBSCRIBED),
        ("email_opened", False, None),
    ],
)
def test_events_that_stop_an_enrolment(
    name: str, conversion: bool, reason: StopReason | None
) -> None:
    assert stop_for_event(name, conversion) is reason


def test_stage_and_consent_stops() -> None:
    assert stop_for_stage(LifecycleStage.CUSTOMER) is StopReason.CONVERTED
    assert stop_for_stage(LifecycleStage.OPPORTUNITY) is None
    email_only = frozenset({NurtureChannel.EMAIL})
    assert stop_for_consent(False, None, email_only) is StopReason.UNSUBSCRIBED
    assert stop_for_consent(True, False, email_only) is None
    assert stop_for_consent(None, False, frozenset({NurtureChannel.SMS})) is StopReason.UNSUBSCRIBED


def test_webhook_signature_is_hmac_sha256_of_the_body() -> None:
    body = b'{"lead_id":"l1"}'
    signature = sign(b"s3cret", body)
    # computed independently: printf '{"lead_id":"l1"}' | openssl dgst -sha256 -hmac s3cret
    import hashlib
    import hmac

    assert signature == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert verify(b"s3cret", body, signature)
    assert not verify(b"other", body, signature)
    assert not verify(b"s3cret", body + b" ", signature)


def test_backoff_doubles_to_the_cap_with_full_jitter() -> None:
    policy = RetryPolicy(
        initial_backoff=timedelta(seconds=1), max_backoff=timedelta(seconds=60), max_attempts=5
    )
    assert [backoff_ceiling(policy, n).total_seconds() for n in range(1, 9)] == [
        1,
        2,
        4,
        8,
        16,
        32,
        60,
        60,
    ]
    rng = random.Random(7)
    delays = [next_delay(policy, 6, rng).total_seconds() for _ in range(500)]
    assert all(0 <= d <= 32 for d in delays)
    assert max(delays) > 28 and min(delays) < 4  # spread over the whole window
    assert not exhausted(policy, 4) and exhausted(policy, 5)
    assert exhausted(RetryPolicy(), 20) and not exhausted(RetryPolicy(), 19)
    assert backoff_ceiling(RetryPolicy(), 1000) == timedelta(minutes=10)


def test_yaml_round_trip_of_the_example() -> None:
    config = load_yaml(EXAMPLE.read_text())
    assert load_yaml(dump_yaml(config)) == config
    rule = config.rule("hot-enterprise-to-stacksense")
    assert rule is not None and rule.strategy is Strategy.ROUND_ROBIN
    assert config.sla.acknowledge_within == timedelta(hours=4)
    seq = config.sequence("enterprise-default")
    assert seq is not None and seq.steps[3] == NurtureStep(
        day_offset=10, template="demo-offer", channel=NurtureChannel.CALL
    )
    stored = replace(config, version=3, created_by="key-1", created_at=NOW)
    assert "version: 3" in dump_yaml(stored)
    assert load_yaml(dump_yaml(stored)) == config  # output-only fields are ignored on input


def test_yaml_errors_name_the_path() -> None:
    text = """
brands:
  - id: b
    ownrs: []
rules:
  - id: r
    strategy: rr
    target_brand_id: b
sla: {acknowledge_within: soon}
"""
    with pytest.raises(DocumentError) as caught:
        load_yaml(text)
    assert [str(v) for v in caught.value.violations] == [
        "brands[0].ownrs: unknown key (allowed: fallback_owner_id, id, name, owners, sink)",
        "rules[0].strategy: unknown value 'rr' (one of fixed_owner, round_robin, weighted, least_loaded)",
        "sla.acknowledge_within: not a duration 'soon' (e.g. 90s, 10m, 4h, 1d)",
    ]
    with pytest.raises(DocumentError, match="^document: not valid YAML: while parsing"):
        load_yaml("brands: [")
    with pytest.raises(DocumentError, match="^document: must be a mapping"):
        load_yaml("- a list")


def test_sequence_of_steps_reads_back_with_channels() -> None:
    sequence = NurtureSequence(
        id="s", steps=(NurtureStep(day_offset=0, template="t", channel=NurtureChannel.SMS),)
    )
    assert schedule(sequence, NOW)[0].due_at == NOW
