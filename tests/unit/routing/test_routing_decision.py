"""Decisions: rule order, first match wins, also route, never twice to a brand per trigger,
the consent gate, the trace."""

from __future__ import annotations

from datetime import UTC, datetime

from leadflow_routing.domain.config import (
    Brand,
    Continuation,
    Owner,
    RoutingConfig,
    Rule,
    Strategy,
    with_defaults,
)
from leadflow_routing.domain.decision import (
    ConsentOutcome,
    PriorRoute,
    RuleOutcome,
    Trigger,
    compile_config,
    decide,
    dedup_key,
    routed_brands,
)
from leadflow_routing.domain.snapshot import LeadConsents, LeadScore, LeadSnapshot, Segment

NOW = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
BRANDS = tuple(
    Brand(id=b, owners=(Owner(id=f"{b}-1"), Owner(id=f"{b}-2"))) for b in ("home", "other", "third")
)


def config(*rules: Rule, require_tracking: bool = False) -> RoutingConfig:
    return with_defaults(
        RoutingConfig(
            brands=BRANDS, rules=rules, require_tracking_consent=require_tracking, version=7
        )
    )


def rule(
    rid: str, cond: str, brand: str = "home", cont: Continuation = Continuation.STOP, **kw: object
) -> Rule:
    return Rule(
        id=rid,
        condition=cond,
        target_brand_id=brand,
        strategy=Strategy.ROUND_ROBIN,
        continuation=cont,
        **kw,
    )  # type: ignore[arg-type]


def lead(total: float = 80, sharing: bool | None = True, **kw: object) -> LeadSnapshot:
    return LeadSnapshot(
        lead_id="l1",
        home_brand_id="home",
        score=LeadScore(total=total),
        consents=LeadConsents(portfolio_sharing=sharing),
        **kw,  # type: ignore[arg-type]
    )


def run(
    cfg: RoutingConfig,
    snapshot: LeadSnapshot,
    trigger: Trigger = Trigger.IDENTIFIED,
    detail: str = "",
    history: dict[str, PriorRoute] | None = None,
):  # type: ignore[no-untyped-def]
    decision, _ = decide(
        compile_config(cfg), snapshot, trigger, NOW, trigger_detail=detail, history=history
    )
    return decision


def outcomes(decision) -> list[tuple[str, RuleOutcome]]:  # type: ignore[no-untyped-def]
    return [(e.rule_id, e.outcome) for e in decision.evaluations]


def test_first_match_wins_and_later_rules_are_not_evaluated() -> None:
    cfg = config(
        rule("cold", "lead.score.total < 50"),
        rule("warm", "lead.score.total >= 50", brand="home"),
        rule("all", ""),
    )
    decision = run(cfg, lead())
    assert outcomes(decision) == [("cold", RuleOutcome.NOT_MATCHED), ("warm", RuleOutcome.ROUTED)]
    assert [r.brand_id for r in decision.routes] == ["home"]
    assert (
        decision.summary
        == "Routed to home (owner home-1) by rule warm; 1 later rule(s) not evaluated (rule warm stops)"
    )
    assert decision.config_version == 7


def test_also_route_goes_on_to_later_rules() -> None:
    cfg = config(
        rule("a", "true", brand="other", cont=Continuation.ALSO_ROUTE),
        rule("b", "false"),
        rule("c", "true", brand="home"),
        rule("d", "true", brand="third"),
    )
    decision = run(cfg, lead())
    assert outcomes(decision) == [
        ("a", RuleOutcome.ROUTED),
        ("b", RuleOutcome.NOT_MATCHED),
        ("c", RuleOutcome.ROUTED),
    ]
    assert [r.brand_id for r in decision.routes] == ["other", "home"]


def test_disabled_rules_are_skipped_and_errors_count_as_not_matched() -> None:
    cfg = config(
        rule("off", "true", disabled=True),
        rule("broken", 'lead.traits.country == "US"'),
        rule("ok", "true"),
    )
    decision = run(cfg, lead())
    assert outcomes(decision) == [
        ("off", RuleOutcome.DISABLED),
        ("broken", RuleOutcome.ERROR),
        ("ok", RuleOutcome.ROUTED),
    ]
    assert decision.evaluations[1].error == "no such key: country"


def test_consent_gate_blocks_other_brands_without_portfolio_sharing() -> None:
    cfg = config(rule("share", "true", brand="other"), rule("home", "true"))
    for sharing in (None, False):
        decision = run(cfg, lead(sharing=sharing))
        assert outcomes(decision) == [
            ("share", RuleOutcome.BLOCKED_BY_CONSENT),
            ("home", RuleOutcome.ROUTED),
        ]
        consent = decision.evaluations[0].consent
        assert (
            consent is not None and consent.outcome is ConsentOutcome.BLOCKED_NO_PORTFOLIO_SHARING
        )
        assert consent.explanation == (
            "other is not the home brand home; portfolio_sharing consent "
            + ("never given" if sharing is None else "withdrawn")
        )
    allowed = run(cfg, lead(sharing=True))
    assert allowed.evaluations[0].consent.outcome is ConsentOutcome.ALLOWED_PORTFOLIO_SHARING  # type: ignore[union-attr]
    assert [r.brand_id for r in allowed.routes] == ["other"]


def test_tracking_consent_when_required_blocks_every_brand() -> None:
    cfg = config(rule("home", "true"), require_tracking=True)
    decision = run(cfg, lead())
    assert outcomes(decision) == [("home", RuleOutcome.BLOCKED_BY_CONSENT)]
    assert decision.evaluations[0].consent.outcome is ConsentOutcome.BLOCKED_NO_TRACKING_CONSENT  # type: ignore[union-attr]
    assert decision.routes == ()
    granted = run(cfg, LeadSnapshot(home_brand_id="home", consents=LeadConsents(tracking=True)))
    assert [r.brand_id for r in granted.routes] == ["home"]


def test_never_twice_to_the_same_brand_for_the_same_trigger() -> None:
    cfg = config(rule("home", "true"))
    key = dedup_key("home", Trigger.THRESHOLD_CROSSED, "temperature:hot")
    history = {key: PriorRoute("d-1", NOW)}
    again = run(cfg, lead(), Trigger.THRESHOLD_CROSSED, "temperature:hot", history)
    assert outcomes(again) == [("home", RuleOutcome.DUPLICATE)]
    dedup = again.evaluations[0].dedup
    assert dedup is not None and dedup.previous_decision_id == "d-1" and dedup.key == key
    assert again.routes == ()
    # another threshold is another reason; a manual route is never a duplicate
    assert run(cfg, lead(), Trigger.THRESHOLD_CROSSED, "grade:a", history).routes
    assert run(
        cfg,
        lead(),
        Trigger.MANUAL,
        "",
        {dedup_key("home", Trigger.MANUAL, ""): PriorRoute("d", NOW)},
    ).routes


def test_two_also_route_rules_to_one_brand_route_once() -> None:
    cfg = config(
        rule("a", "true", cont=Continuation.ALSO_ROUTE),
        rule("b", "true", cont=Continuation.ALSO_ROUTE),
    )
    decision = run(cfg, lead())
    assert outcomes(decision) == [("a", RuleOutcome.ROUTED), ("b", RuleOutcome.DUPLICATE)]
    assert len(decision.routes) == 1
    assert routed_brands(decision.evaluations) == ["home"]


def test_duplicate_keeps_the_rule_continuation() -> None:
    cfg = config(rule("a", "true"), rule("b", "true", brand="other"))
    history = {dedup_key("home", Trigger.IDENTIFIED, ""): PriorRoute("d-0", None)}
    assert outcomes(run(cfg, lead(), history=history)) == [("a", RuleOutcome.DUPLICATE)]


def test_nurture_by_segment_and_by_id() -> None:
    cfg = config(
        rule("seg", "true", cont=Continuation.ALSO_ROUTE, nurture_by_segment=True),
        rule("id", "true", brand="other", nurture_sequence_id="startup-default"),
    )
    decision = run(cfg, lead(segment=Segment.SMB))
    assert [r.nurture_sequence_id for r in decision.routes] == ["smb-default", "startup-default"]
    unknown = run(cfg, lead())
    assert [r.nurture_sequence_id for r in unknown.routes] == ["", "startup-default"]


def test_trace_records_owner_choice_and_turns_advance_between_decisions() -> None:
    compiled = compile_config(config(rule("home", "true")))
    states = {}
    owners = []
    for _ in range(3):
        decision, states = decide(compiled, lead(), Trigger.MANUAL, NOW, states=states)
        selection = decision.evaluations[0].owner_selection
        assert selection is not None and selection.owner is not None
        owners.append(selection.owner.id)
    assert owners == ["home-1", "home-2", "home-1"]
    assert decision.lead.as_of == NOW
