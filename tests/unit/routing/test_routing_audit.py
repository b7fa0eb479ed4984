"""The compact audit record (api/audit.py): rebuilt from the configuration version and the
stored snapshot, it gives exactly the trace the decision made (decision_to_proto), for every
kind of rule outcome; and guards (conditions.py) never change a condition's result."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadflow.routing.v1 import routing_types_pb2 as tpb
from leadflow_routing.api.audit import compact_record, full_record
from leadflow_routing.api.mapping import decision_to_proto
from leadflow_routing.domain.conditions import compile_condition, guard_values
from leadflow_routing.domain.config import Continuation, Rule, Strategy, with_defaults
from leadflow_routing.domain.decision import (
    PriorRoute,
    RuleOutcome,
    Trigger,
    compile_config,
    decide,
)
from leadflow_routing.domain.document import load_yaml
from leadflow_routing.domain.snapshot import (
    EVENT_TYPES,
    Grade,
    LeadConsents,
    LeadScore,
    LeadSnapshot,
    LifecycleStage,
    Segment,
    Temperature,
    cel_context,
)
from leadflow_routing.domain.strategies import BrandState

EXAMPLE = Path(__file__).parents[3] / "examples" / "portfolio-371minds.yaml"
AT = datetime(2025, 6, 2, 15, 0, tzinfo=UTC)
BRANDS = ("modumind", "stacksense", "epicquest", "ikid", "vision2results")
EXTRA = (
    Rule(
        id="broken",
        condition='lead.traits.nickname == "x"',
        target_brand_id="ikid",
        strategy=Strategy.ROUND_ROBIN,
        continuation=Continuation.ALSO_ROUTE,
    ),
    Rule(
        id="off",
        condition="true",
        target_brand_id="ikid",
        strategy=Strategy.WEIGHTED,
        disabled=True,
    ),
    Rule(
        id="share-hot",
        condition='lead.score.total > 50 && trigger != "manual" && lead.stage in ["new", "engaged"]',
        target_brand_id="ikid",
        strategy=Strategy.LEAST_LOADED,
        continuation=Continuation.ALSO_ROUTE,
        nurture_by_segment=True,
    ),
)


def random_lead(i: int, rng: random.Random) -> LeadSnapshot:
    traits: dict[str, object] = {"email": f"l{i}@example.com", "employees": rng.randint(1, 900)}
    if rng.random() < 0.5:
        traits["interests"] = rng.sample(["ai", "strategy", "games"], 2)
    return LeadSnapshot(
        lead_id=f"lead-{i}",
        home_brand_id=rng.choice(BRANDS),
        traits=traits,
        segment=rng.choice(list(Segment)),
        score=LeadScore(total=rng.uniform(0, 100), intent=rng.uniform(0, 100), scored_at=AT)
        if rng.random() < 0.8
        else None,
        grade=rng.choice(list(Grade)),
        temperature=rng.choice(list(Temperature)),
        stage=rng.choice(list(LifecycleStage)),
        consents=LeadConsents(
            tracking=rng.choice([True, False, None]),
            email=rng.choice([True, False, None]),
            portfolio_sharing=rng.choice([True, False, None]),
        ),
        recent_event_counts={name: rng.randint(0, 3) for name in EVENT_TYPES[:6]},
        first_seen_at=AT - timedelta(days=rng.randint(0, 40)),
        last_activity_at=AT,
        as_of=AT,
    )


@pytest.mark.parametrize("require_tracking", [False, True])
def test_the_trace_rebuilt_from_the_compact_record_is_the_decisions_trace(require_tracking):
    example = load_yaml(EXAMPLE.read_text())
    config = with_defaults(
        replace(
            example,
            rules=EXTRA + example.rules,
            require_tracking_consent=require_tracking,
            version=4,
        )
    )
    compiled = compile_config(config)
    rng = random.Random(6)
    states: dict[str, BrandState] = {}
    outcomes: set[RuleOutcome] = set()
    for i in range(400):
        lead = random_lead(i, rng)
        trigger = rng.choice(list(Trigger)[1:])
        detail = rng.choice(["", "temperature:hot"])
        history = {
            f"{b}|{trigger.short_name}|{detail}": PriorRoute(f"d-{i}", AT - timedelta(hours=1))
            for b in rng.sample(BRANDS, 2)
        }
        decision, states = decide(
            compiled, lead, trigger, AT, trigger_detail=detail, history=history, states=states
        )
        decision = replace(decision, decision_id=f"decision-{i}", trigger_event_id="e", reason="r")
        whole = decision_to_proto(decision)
        stored = compact_record(decision).SerializeToString()
        assert len(stored) < len(whole.SerializeToString())
        rebuilt = full_record(tpb.RouteDecision.FromString(stored), compiled)
        assert rebuilt == whole, i
        outcomes |= {e.outcome for e in decision.evaluations}
    assert outcomes == set(RuleOutcome) - {RuleOutcome.UNSPECIFIED}


CONDITIONS = (
    'lead.home_brand_id == "modumind" && lead.score.total >= 40',
    '"hot" == lead.temperature && lead.traits.plan == "pro"',
    'trigger == "stage_changed" && trigger_detail != "lost"',
    'lead.temperature in ["warm", "hot"] && lead.stage != "new"',
    'lead.grade == "a_plus" || lead.segment == "smb"',
    '(lead.stage == "customer") && lead.recent_event_counts.page_view > 1',
    'lead.segment != "enterprise" && lead.traits.plan == "pro"',
)


def test_guards_are_the_simple_string_conjuncts():
    guards = [compile_condition(c).guards for c in CONDITIONS]
    assert guards == [
        (("home_brand_id", frozenset({"modumind"}), False),),
        (("temperature", frozenset({"hot"}), False),),
        (
            ("trigger", frozenset({"stage_changed"}), False),
            ("trigger_detail", frozenset({"lost"}), True),
        ),
        (("temperature", frozenset({"warm", "hot"}), False), ("stage", frozenset({"new"}), True)),
        (),  # a top-level || has no guard
        (),  # parenthesised: left to CEL
        (("segment", frozenset({"enterprise"}), True),),
    ]


def test_a_failed_guard_always_means_the_condition_is_false():
    rng = random.Random(9)
    checked = 0
    for i in range(300):
        lead = random_lead(i, rng)
        trigger = rng.choice(["identified", "stage_changed", "manual"])
        detail = rng.choice(["", "lost", "won"])
        facts = guard_values(lead, trigger, detail)
        for source in CONDITIONS:
            condition = compile_condition(source)
            ctx = cel_context(lead, trigger, detail, condition.plan)
            matched, _ = condition.evaluate(ctx)
            if any((facts[n] in values) is negated for n, values, negated in condition.guards):
                assert not matched, (source, i)
                checked += 1
    assert checked > 300
