"""The compact audit record (api/audit.py): rebuilt from the configuration version and the
stored snapshot, it gives exactly the trace the decision made (decision_to_proto), for every
kind of rule outcome; guards (conditions.py) never change a condition's result; and the rule
index (rule_index.py) never changes a decision."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadflow.routing.v1 import routing_types_pb2 as tpb
from leadflow_routing.api.audit import compact_record, full_record
from leadflow_routing.api.mapping import decision_to_proto
from leadflow_routing.domain.conditions import Guard, compile_condition, fact_reader
from leadflow_routing.domain.config import (
    Continuation,
    RoutingConfig,
    Rule,
    Strategy,
    with_defaults,
)
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
    'lead.segment != "enterprise" && size(lead.traits) > 1',
    "!lead.consents.email && 2 < lead.recent_event_counts.webinar",
    "has(lead.traits.employees) && lead.traits.employees >= 100 && lead.consents.tracking",
    "size(lead) > 0 && lead.recent_event_counts.email_replied > 0",  # the whole `lead`
)


def test_guards_are_the_conjuncts_python_decides():
    found = [(c.guards, c.only_guards) for c in map(compile_condition, CONDITIONS)]
    assert found == [
        (
            (
                Guard(("home_brand_id", ""), "str", "in", frozenset({"modumind"})),
                Guard(("score", "total"), "num", ">=", 40),
            ),
            True,
        ),
        (
            (
                Guard(("temperature", ""), "str", "in", frozenset({"hot"})),
                Guard(("traits", "plan"), "str", "in", frozenset({"pro"})),
            ),
            True,
        ),
        (
            (
                Guard(("trigger", ""), "str", "in", frozenset({"stage_changed"})),
                Guard(("trigger_detail", ""), "str", "in", frozenset({"lost"}), negated=True),
            ),
            True,
        ),
        (
            (
                Guard(("temperature", ""), "str", "in", frozenset({"warm", "hot"})),
                Guard(("stage", ""), "str", "in", frozenset({"new"}), negated=True),
            ),
            True,
        ),
        ((), False),  # a top-level || has no guard
        ((Guard(("recent_event_counts", "page_view"), "num", ">", 1),), False),  # (...): CEL
        ((Guard(("segment", ""), "str", "in", frozenset({"enterprise"}), negated=True),), False),
        (
            (
                Guard(("consents", "email"), "bool", "==", False),
                Guard(("recent_event_counts", "webinar"), "num", ">", 2),  # flipped
            ),
            True,
        ),
        (
            (
                Guard(("traits", "employees"), "has", "has", None),
                Guard(("traits", "employees"), "num", ">=", 100),
                Guard(("consents", "tracking"), "bool", "==", True),
            ),
            True,
        ),
        ((Guard(("recent_event_counts", "email_replied"), "num", ">", 0),), False),
    ]


CONJUNCTS = (
    'lead.home_brand_id == "modumind"',
    'lead.stage != "new"',
    'lead.grade in ["a_plus", "a"]',
    'trigger_detail == "lost"',
    "lead.score.total >= 40",
    "lead.score.total > 50.5",
    "lead.score.intent < -1",
    "lead.score.model_version == 2",
    "0x10 <= lead.score.model_version",
    "lead.score.demographic != 0",
    "lead.recent_event_counts.page_view > 1",
    'lead.recent_event_counts["webinar"] >= 1',
    "lead.recent_event_counts.email_replied == 0.0",
    "lead.consents.email",
    "!lead.consents.portfolio_sharing",
    "lead.consents.tracking != true",
    "has(lead.traits.plan)",
    "has(lead.score.scored_at)",
    'lead.traits.plan == "pro"',
    'lead.traits.plan != "pro"',
    'lead.traits.plan in ["pro", "team"]',
    "lead.traits.employees > 100",
    "lead.traits.employees <= 1e3",
    "lead.traits.vip",
    "lead.traits.vip == false",
)
ODD_TRAITS = ("pro", "team", 1, 2.5, True, False, None, ["pro"], {"a": 1}, 2**60, float("nan"))


def odd_lead(i: int, rng: random.Random, *, null_counts: bool = False) -> LeadSnapshot:
    """Leads with values of every type a guard may meet: ints and NaN in scores, huge
    counts, traits of any JSON type or absent, custom counts present or not (and, with
    `null_counts`, a count stored as None, which no proto can carry)."""
    lead = random_lead(i, rng)
    total = rng.choice([rng.uniform(0, 100), 40, 40.0, 51, float("nan"), float("inf"), 2**60])
    traits = {
        name: rng.choice(ODD_TRAITS) for name in ("plan", "employees", "vip") if rng.random() < 0.7
    }
    if rng.random() < 0.5:
        traits["employees"] = rng.choice([99, 100, 101, 100.5, 1000, 1001.0, 2**54 + 1])
    counts = dict(lead.recent_event_counts)
    if rng.random() < 0.5:
        counts["webinar"] = rng.choice([0, 1, 2, 2**62])
    if rng.random() < 0.2:
        counts["page_view"] = 2**62
    if null_counts and rng.random() < 0.1:  # the whole `lead` reads it as null
        counts["email_replied"] = None  # type: ignore[assignment]
    score = lead.score
    if score is not None:
        score = replace(score, total=total, model_version=rng.choice([0, 2, 16, 17]))
    return replace(lead, traits=traits, score=score, recent_event_counts=counts)


def odd_cases(n: int) -> Iterator[tuple[int, LeadSnapshot, str, str]]:
    """(i, lead, trigger, trigger detail) for n odd leads."""
    rng = random.Random(9)
    for i in range(n):
        lead = odd_lead(i, rng, null_counts=True)
        yield (
            i,
            lead,
            rng.choice(["identified", "stage_changed", "manual"]),
            rng.choice(["", "lost", "won"]),
        )


def test_a_decided_guard_is_what_cel_gives():
    """Each guard, where it answers, answers what CEL evaluates its conjunct to."""
    conditions = [compile_condition(source) for source in CONJUNCTS]
    assert all(len(c.guards) == 1 and c.only_guards for c in conditions)
    decided = {True: 0, False: 0}
    for i, lead, trigger, detail in odd_cases(400):
        for condition in conditions:
            guard = condition.guards[0]
            answer = guard.decide(fact_reader(guard.fact)(lead, trigger, detail))
            if answer is None:
                continue
            ctx = cel_context(lead, trigger, detail, condition.plan)
            assert condition.program.execute(ctx) is answer, (condition.source, i)
            decided[answer] += 1
    assert min(decided.values()) > 1000


def test_a_failed_guard_always_means_the_condition_is_false():
    conditions = [compile_condition(source) for source in CONDITIONS]
    checked = 0
    for i, lead, trigger, detail in odd_cases(300):
        for condition in conditions:
            result = condition.evaluate(cel_context(lead, trigger, detail, condition.plan))
            matched = result[0]
            answers = [
                g.decide(fact_reader(g.fact)(lead, trigger, detail)) for g in condition.guards
            ]
            if False in answers:  # false, not an error: a plain miss
                assert result == (False, ""), (condition.source, i)
                checked += 1
            elif condition.only_guards and None not in answers:
                assert matched, (condition.source, i)
                checked += 1
    assert checked > 1000


def bench_like_config() -> RoutingConfig:
    """Many rules of every guard shape (bench/routing.py's mix and more), all enabled."""
    rng = random.Random(5)
    rules = []
    for i in range(120):
        brand = BRANDS[i % len(BRANDS)]
        condition = rng.choice(CONJUNCTS + CONDITIONS)
        if i % 3 == 0:
            condition = f"({condition}) && {rng.choice(CONJUNCTS)}"
        elif i % 3 == 1:
            condition = f'{condition} && lead.home_brand_id == "{brand}"'
        rules.append(
            Rule(
                id=f"rule-{i}",
                condition=condition,
                target_brand_id=brand,
                strategy=Strategy.ROUND_ROBIN,
                continuation=Continuation.ALSO_ROUTE if i % 7 else Continuation.STOP,
                disabled=i % 17 == 0,
            )
        )
    example = load_yaml(EXAMPLE.read_text())
    return with_defaults(replace(example, rules=EXTRA + tuple(rules) + example.rules, version=7))


@pytest.mark.parametrize("which", ["example", "many rules"])
def test_the_rule_index_gives_the_decisions_every_rule_run_in_cel_gives(which):
    """The index (guards decided in Python, rules skipped) against the plain evaluation: the
    same traces, owners and states for random and odd leads."""
    if which == "example":
        example = load_yaml(EXAMPLE.read_text())
        config = with_defaults(replace(example, rules=EXTRA + example.rules, version=4))
    else:
        config = bench_like_config()
    indexed, plain = compile_config(config), compile_config(config, guards=False)
    assert indexed.index.facts and not plain.index.facts
    rng = random.Random(11)
    states: dict[str, BrandState] = {}
    plain_states: dict[str, BrandState] = {}
    routed = 0
    for i in range(600):
        lead = odd_lead(i, rng) if i % 2 else random_lead(i, rng)
        trigger = rng.choice(list(Trigger)[1:])
        detail = rng.choice(["", "lost", "temperature:hot"])
        history = {
            f"{b}|{trigger.short_name}|{detail}": PriorRoute(f"d-{i}", AT - timedelta(hours=1))
            for b in rng.sample(BRANDS, 1)
        }
        decision, states = decide(
            indexed, lead, trigger, AT, trigger_detail=detail, history=history, states=states
        )
        expected, plain_states = decide(
            plain, lead, trigger, AT, trigger_detail=detail, history=history, states=plain_states
        )
        assert decision_to_proto(decision) == decision_to_proto(expected), i
        assert states == plain_states, i
        routed += len(decision.routes)
    assert routed > 300
