"""A routing decision and its trace (routing_types.proto RouteDecision).

Rules are evaluated in order against one CEL context built for the lead. A matching rule
passes the consent gate (tracking consent when the configuration requires it; portfolio-
sharing consent for any brand but the home brand; a blocked rule counts as not matched), then
the duplicate check (never twice to the same brand for the same trigger and detail; MANUAL is
never a duplicate of an earlier decision), then routes. STOP ends evaluation, ALSO_ROUTE goes
on. Owners are picked afterwards (`assign_owners`) so the caller can lock exactly the brands
that are routed to; `decide` does both for dry runs and benchmarks.

A decision evaluates hundreds of rules and almost all of them simply do not match, so the
trace (`Evaluations`) keeps only the notable ones (matched, errored) and makes the others
when the whole trace is read (an explanation, the audit record rebuilt): the rules evaluated
follow from the configuration and the notable ones (`evaluated_count`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, overload

from leadflow_routing.domain.conditions import Condition, compile_condition
from leadflow_routing.domain.config import Brand, Continuation, RoutingConfig, Rule, Strategy
from leadflow_routing.domain.rule_index import RuleIndex, build_index
from leadflow_routing.domain.snapshot import (
    ContextPlan,
    LeadSnapshot,
    ShortNamedEnum,
    cel_context,
)
from leadflow_routing.domain.strategies import (
    BrandState,
    ChoiceReason,
    OwnerSelection,
    select_owner,
)


class Trigger(ShortNamedEnum):
    UNSPECIFIED = 0
    IDENTIFIED = 1
    THRESHOLD_CROSSED = 2
    STAGE_CHANGED = 3
    MANUAL = 4


class RuleOutcome(ShortNamedEnum):
    UNSPECIFIED = 0
    NOT_MATCHED = 1
    ERROR = 2
    DISABLED = 3
    ROUTED = 4
    BLOCKED_BY_CONSENT = 5
    DUPLICATE = 6


_ENDING = (RuleOutcome.ROUTED, RuleOutcome.DUPLICATE)
"""Outcomes of a matched rule after which a STOP rule ends the evaluation."""


class ConsentOutcome(ShortNamedEnum):
    UNSPECIFIED = 0
    ALLOWED_HOME_BRAND = 1
    ALLOWED_PORTFOLIO_SHARING = 2
    BLOCKED_NO_PORTFOLIO_SHARING = 3
    BLOCKED_NO_TRACKING_CONSENT = 4

    @property
    def allowed(self) -> bool:
        return self in (ConsentOutcome.ALLOWED_HOME_BRAND, ConsentOutcome.ALLOWED_PORTFOLIO_SHARING)


@dataclass(frozen=True, slots=True)
class ConsentCheck:
    outcome: ConsentOutcome
    explanation: str


@dataclass(frozen=True, slots=True)
class PriorRoute:
    """An earlier route of the lead, for the duplicate check."""

    decision_id: str
    routed_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DedupCheck:
    duplicate: bool
    key: str
    previous_decision_id: str = ""
    previous_routed_at: datetime | None = None


class Explainer:
    """Explanations of one decision's conditions, made when first read (the audit record,
    a trace): a decision evaluates hundreds of rules and most explanations are never read
    on the hot path. Paths shared by rules are formatted once."""

    __slots__ = ("_cache", "snapshot", "trigger", "trigger_detail")

    def __init__(self, snapshot: LeadSnapshot, trigger: str, trigger_detail: str) -> None:
        self.snapshot = snapshot
        self.trigger = trigger
        self.trigger_detail = trigger_detail
        self._cache: dict[str, str] = {}

    def explain(self, condition: Condition) -> str:
        return condition.explain(self.snapshot, self.trigger, self.trigger_detail, self._cache)


class RuleEvaluation:
    """One rule as evaluated. A plain slotted class (not a dataclass): a decision makes one
    per evaluated rule, so construction cost counts; nothing changes it afterwards except
    the owner selection `assign_owners` adds to a routed rule."""

    __slots__ = (
        "_condition",
        "_explainer",
        "_explanation",
        "consent",
        "dedup",
        "error",
        "matched",
        "outcome",
        "owner_selection",
        "rule",
        "rule_index",
    )

    def __init__(
        self,
        rule_index: int,
        rule: Rule,
        matched: bool,
        outcome: RuleOutcome,
        error: str = "",
        *,
        condition: Condition | None = None,
        explainer: Explainer | None = None,
        explanation: str = "",
        consent: ConsentCheck | None = None,
        dedup: DedupCheck | None = None,
        owner_selection: OwnerSelection | None = None,
    ) -> None:
        self.rule_index = rule_index
        self.rule = rule
        self.matched = matched
        self.outcome = outcome
        self.error = error
        self._condition = condition
        self._explainer = explainer
        self._explanation = explanation
        self.consent = consent
        self.dedup = dedup
        self.owner_selection = owner_selection

    @property
    def rule_id(self) -> str:
        return self.rule.id

    @property
    def condition(self) -> str:
        return self.rule.condition

    @property
    def target_brand_id(self) -> str:
        return self.rule.target_brand_id

    @property
    def continuation(self) -> Continuation:
        return self.rule.continuation

    @property
    def explanation(self) -> str:
        if not self._explanation and self._explainer is not None and self._condition is not None:
            self._explanation = self._explainer.explain(self._condition)
        return self._explanation

    def __repr__(self) -> str:
        return f"RuleEvaluation({self.rule_index}, {self.rule_id!r}, {self.outcome.short_name})"


class Evaluations(Sequence[RuleEvaluation]):
    """The trace of one decision: every rule evaluated, in order. Only `notable` ones
    (matched or errored, by rule index) are made while deciding; the rest (not matched,
    disabled) are made, with their explanations, when the trace is first read whole."""

    __slots__ = ("_all", "_compiled", "_count", "_explainer", "notable")

    def __init__(
        self,
        compiled: CompiledConfig,
        explainer: Explainer,
        count: int,
        notable: dict[int, RuleEvaluation],
    ) -> None:
        self._compiled = compiled
        self._explainer = explainer
        self._count = count
        self.notable = notable
        self._all: tuple[RuleEvaluation, ...] | None = None

    def _every(self) -> tuple[RuleEvaluation, ...]:
        if self._all is None:
            rules = self._compiled.config.rules
            conditions = self._compiled.conditions
            out = []
            for index in range(self._count):
                found = self.notable.get(index)
                if found is None:
                    rule = rules[index]
                    if rule.disabled:
                        found = RuleEvaluation(
                            index, rule, False, RuleOutcome.DISABLED, explanation="rule disabled"
                        )
                    else:
                        found = RuleEvaluation(
                            index,
                            rule,
                            False,
                            RuleOutcome.NOT_MATCHED,
                            condition=conditions[index],
                            explainer=self._explainer,
                        )
                out.append(found)
            self._all = tuple(out)
        return self._all

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> RuleEvaluation: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[RuleEvaluation, ...]: ...
    def __getitem__(self, index: int | slice) -> RuleEvaluation | tuple[RuleEvaluation, ...]:
        return self._every()[index]

    def __iter__(self) -> Iterator[RuleEvaluation]:
        return iter(self._every())

    @property
    def last(self) -> RuleEvaluation | None:
        """The last rule evaluated when it is notable (a plain miss otherwise: None)."""
        return self.notable.get(self._count - 1)

    def __repr__(self) -> str:
        return f"Evaluations({self._count}, notable={list(self.notable.values())!r})"


def evaluated_count(compiled: CompiledConfig, notable: Mapping[int, RuleEvaluation]) -> int:
    """How many rules a decision with these notable evaluations evaluated: up to the first
    that matched, routed (or was a duplicate) and stops; else all of them."""
    rules = compiled.config.rules
    for index, evaluation in notable.items():
        if evaluation.outcome in _ENDING and rules[index].stops:
            return index + 1
    return len(rules)


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """One brand the lead goes to. Ids and the deadline are filled in by the service."""

    rule_id: str
    brand_id: str
    strategy: Strategy
    selection: OwnerSelection | None = None
    nurture_sequence_id: str = ""
    assignment_id: str = ""
    acknowledge_by: datetime | None = None
    enrollment_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    lead: LeadSnapshot
    trigger: Trigger
    trigger_detail: str
    config_version: int
    decided_at: datetime
    evaluations: Evaluations
    routes: tuple[Route, ...]
    summary: str
    dry_run: bool = False
    decision_id: str = ""
    trigger_event_id: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CompiledConfig:
    """A valid configuration with its conditions compiled, one context plan for all, and the
    index of the enabled rules by their guards."""

    config: RoutingConfig
    conditions: tuple[Condition, ...]
    plan: ContextPlan
    brands: Mapping[str, Brand]
    active: tuple[tuple[int, Rule, Condition, Any], ...]
    """(index, rule, condition, program) of the enabled rules, in order: bit i of `index`'s
    masks is active[i]."""
    index: RuleIndex
    rules: Mapping[str, Rule]
    """The rules by id."""


def compile_config(config: RoutingConfig, *, guards: bool = True) -> CompiledConfig:
    """For a configuration validation accepted (raises ConditionError otherwise). Without
    `guards` every enabled rule runs its CEL program (to compare with)."""
    conditions = tuple(compile_condition(rule.condition) for rule in config.rules)
    plan = ContextPlan()
    for rule, condition in zip(config.rules, conditions, strict=True):
        if not rule.disabled:
            plan = plan.merge(condition.plan)
    active = tuple(
        (index, rule, condition, condition.program)
        for index, (rule, condition) in enumerate(zip(config.rules, conditions, strict=True))
        if not rule.disabled
    )
    return CompiledConfig(
        config=config,
        conditions=conditions,
        plan=plan,
        brands={b.id: b for b in config.brands},
        active=active,
        index=build_index([a[2] for a in active], guards=guards),
        rules={r.id: r for r in reversed(config.rules)},  # ids are unique; else the first
    )


def dedup_key(brand_id: str, trigger: Trigger, trigger_detail: str) -> str:
    return f"{brand_id}|{trigger.short_name}|{trigger_detail}"


def check_consent(
    snapshot: LeadSnapshot, target_brand_id: str, require_tracking: bool
) -> ConsentCheck:
    consents = snapshot.consents
    if require_tracking and consents.tracking is not True:
        state = "withdrawn" if consents.tracking is False else "never given"
        return ConsentCheck(
            ConsentOutcome.BLOCKED_NO_TRACKING_CONSENT,
            f"the configuration requires tracking consent; tracking consent {state}",
        )
    home = snapshot.home_brand_id
    if target_brand_id == home:
        return ConsentCheck(ConsentOutcome.ALLOWED_HOME_BRAND, f"{home} is the home brand")
    where = f"{target_brand_id} is not the home brand {home or '(unknown)'}"
    if consents.portfolio_sharing is True:
        return ConsentCheck(
            ConsentOutcome.ALLOWED_PORTFOLIO_SHARING, f"{where}; portfolio_sharing consent granted"
        )
    state = "withdrawn" if consents.portfolio_sharing is False else "never given"
    return ConsentCheck(
        ConsentOutcome.BLOCKED_NO_PORTFOLIO_SHARING,
        f"{where}; portfolio_sharing consent {state}",
    )


def evaluate_rules(
    compiled: CompiledConfig,
    snapshot: LeadSnapshot,
    trigger: Trigger,
    trigger_detail: str = "",
    history: Mapping[str, PriorRoute] | None = None,
) -> Evaluations:
    """Every rule evaluated, in order, up to the first STOP that matched; routed rules have
    no owner selection yet."""
    config = compiled.config
    short = trigger.short_name
    history = history or {}
    routed_brands: set[str] = set()
    notable: dict[int, RuleEvaluation] = {}
    explainer = Explainer(snapshot, short, trigger_detail)
    count = len(config.rules)
    # rules outside `candidates` fail a guard: plain misses, left out of `notable`
    candidates, holding = compiled.index.screen(snapshot, short, trigger_detail)
    active = compiled.active
    ctx = None  # the CEL context, built when a rule first needs it
    while candidates:
        bit = candidates & -candidates
        candidates ^= bit
        index, rule, condition, program = active[bit.bit_length() - 1]
        if not bit & holding and program is not None:  # else: it holds without CEL
            if ctx is None:
                ctx = cel_context(snapshot, short, trigger_detail, compiled.plan)
            # Condition.evaluate inlined for the common outcomes; it still turns errors and
            # non-bool results into their recorded text.
            try:
                result = program.execute(ctx)
            except Exception:
                result = None
            if result is False:
                continue
            if result is not True:
                matched, error = condition.evaluate(ctx)
                if not matched:
                    if error:
                        notable[index] = RuleEvaluation(
                            index,
                            rule,
                            False,
                            RuleOutcome.ERROR,
                            error,
                            condition=condition,
                            explainer=explainer,
                        )
                    continue
        consent = check_consent(snapshot, rule.target_brand_id, config.require_tracking_consent)
        if not consent.outcome.allowed:
            notable[index] = RuleEvaluation(
                index,
                rule,
                True,
                RuleOutcome.BLOCKED_BY_CONSENT,
                condition=condition,
                explainer=explainer,
                consent=consent,
            )
            continue
        dedup = _dedup(rule.target_brand_id, trigger, trigger_detail, history, routed_brands)
        outcome = RuleOutcome.DUPLICATE if dedup.duplicate else RuleOutcome.ROUTED
        if outcome is RuleOutcome.ROUTED:
            routed_brands.add(rule.target_brand_id)
        notable[index] = RuleEvaluation(
            index,
            rule,
            True,
            outcome,
            condition=condition,
            explainer=explainer,
            consent=consent,
            dedup=dedup,
        )
        if rule.stops:
            count = index + 1
            break
    return Evaluations(compiled, explainer, count, notable)


def _dedup(
    brand_id: str,
    trigger: Trigger,
    trigger_detail: str,
    history: Mapping[str, PriorRoute],
    routed_now: set[str],
) -> DedupCheck:
    key = dedup_key(brand_id, trigger, trigger_detail)
    if brand_id in routed_now:  # an earlier rule of this very decision
        return DedupCheck(duplicate=True, key=key)
    if trigger is not Trigger.MANUAL:
        prior = history.get(key)
        if prior is not None:
            return DedupCheck(
                duplicate=True,
                key=key,
                previous_decision_id=prior.decision_id,
                previous_routed_at=prior.routed_at,
            )
    return DedupCheck(duplicate=False, key=key)


def routed_brands(evaluations: Evaluations) -> list[str]:
    """Brands the evaluations route to (the rows to lock before picking owners), sorted."""
    return sorted(
        {e.target_brand_id for e in evaluations.notable.values() if e.outcome is RuleOutcome.ROUTED}
    )


def assign_owners(
    compiled: CompiledConfig,
    snapshot: LeadSnapshot,
    evaluations: Evaluations,
    states: Mapping[str, BrandState],
    at: datetime,
) -> tuple[Evaluations, tuple[Route, ...], dict[str, BrandState]]:
    """Owners for the routed rules (recorded in their evaluations), nurture sequences, and
    the brands' states after."""
    config = compiled.config
    new_states = dict(states)
    routes: list[Route] = []
    for evaluation in evaluations.notable.values():
        if evaluation.outcome is not RuleOutcome.ROUTED:
            continue
        rule = evaluation.rule
        brand = compiled.brands[rule.target_brand_id]
        selection, new_states[brand.id] = select_owner(
            brand,
            rule.strategy,
            new_states.get(brand.id, BrandState()),
            at,
            fixed_owner_id=rule.fixed_owner_id,
        )
        evaluation.owner_selection = selection
        routes.append(
            Route(
                rule_id=rule.id,
                brand_id=brand.id,
                strategy=rule.strategy,
                selection=selection,
                nurture_sequence_id=_nurture(config, rule, snapshot),
            )
        )
    return evaluations, tuple(routes), new_states


def _nurture(config: RoutingConfig, rule: Rule, snapshot: LeadSnapshot) -> str:
    """The sequence to enrol in; none when the lead withdrew email consent (it would stop
    at once)."""
    if snapshot.consents.email is False:
        return ""
    if rule.nurture_sequence_id:
        return rule.nurture_sequence_id
    if rule.nurture_by_segment:
        sequence = config.sequence_for_segment(snapshot.segment)
        return sequence.id if sequence is not None else ""
    return ""


def summarize(config: RoutingConfig, evaluations: Evaluations, routes: tuple[Route, ...]) -> str:
    parts: list[str] = []
    for route in routes:
        selection = route.selection
        owner = selection.owner if selection is not None else None
        who = f"owner {owner.id}" if owner is not None else "no owner available"
        text = f"Routed to {route.brand_id} ({who}) by rule {route.rule_id}"
        if route.nurture_sequence_id:
            text += f", nurture {route.nurture_sequence_id}"
        parts.append(text)
    if not routes:
        notable = evaluations.notable.values()
        blocked = [e.rule_id for e in notable if e.outcome is RuleOutcome.BLOCKED_BY_CONSENT]
        duplicate = [e.rule_id for e in notable if e.outcome is RuleOutcome.DUPLICATE]
        text = f"Not routed: no rule routed the lead ({len(evaluations)} evaluated)"
        if blocked:
            text += "; blocked by consent: " + ", ".join(blocked)
        if duplicate:
            text += "; already routed for this trigger: " + ", ".join(duplicate)
        parts.append(text)
    last = evaluations.last  # a plain miss (not notable) never ends the evaluation early
    if last is not None:
        remaining = len(config.rules) - last.rule_index - 1
        if (
            last.matched
            and last.outcome in _ENDING
            and (remaining > 0 and last.continuation is not Continuation.ALSO_ROUTE)
        ):
            parts.append(f"{remaining} later rule(s) not evaluated (rule {last.rule_id} stops)")
    return "; ".join(parts)


def decide(
    compiled: CompiledConfig,
    snapshot: LeadSnapshot,
    trigger: Trigger,
    at: datetime,
    *,
    trigger_detail: str = "",
    history: Mapping[str, PriorRoute] | None = None,
    states: Mapping[str, BrandState] | None = None,
    dry_run: bool = False,
) -> tuple[Decision, dict[str, BrandState]]:
    """The whole decision in one call (dry runs and benchmarks)."""
    evaluations = evaluate_rules(compiled, snapshot, trigger, trigger_detail, history)
    evaluations, routes, new_states = assign_owners(
        compiled, snapshot, evaluations, states or {}, at
    )
    return (
        build_decision(
            compiled, snapshot, trigger, trigger_detail, at, evaluations, routes, dry_run=dry_run
        ),
        new_states,
    )


def build_decision(
    compiled: CompiledConfig,
    snapshot: LeadSnapshot,
    trigger: Trigger,
    trigger_detail: str,
    at: datetime,
    evaluations: Evaluations,
    routes: tuple[Route, ...],
    *,
    dry_run: bool = False,
) -> Decision:
    return Decision(
        lead=snapshot if snapshot.as_of is not None else replace(snapshot, as_of=at),
        trigger=trigger,
        trigger_detail=trigger_detail,
        config_version=compiled.config.version,
        decided_at=at,
        evaluations=evaluations,
        routes=routes,
        summary=summarize(compiled.config, evaluations, routes),
        dry_run=dry_run,
    )


def owner_reason(route: Route) -> ChoiceReason:
    return route.selection.reason if route.selection is not None else ChoiceReason.NONE_AVAILABLE
