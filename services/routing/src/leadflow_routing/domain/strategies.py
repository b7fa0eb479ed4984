"""Picking an owner in a brand: fixed owner, round robin, weighted, least loaded.

Every strategy skips owners that are out of office or at their daily capacity (and, when an
SLA re-assigns, the owner who breached), then falls back to the brand's fallback owner, who is
exempt from capacity and out-of-office. The shared state of a brand (`BrandState`: the
round-robin turn, the weighted round robin's current weights, each owner's load) is read and
written by the caller under a row lock, so replicas never take the same turn; here it is plain
data in, plain data out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from leadflow_routing.domain.config import Brand, Owner, Strategy
from leadflow_routing.domain.snapshot import ShortNamedEnum


class SkipReason(ShortNamedEnum):
    UNSPECIFIED = 0
    OUT_OF_OFFICE = 1
    CAPACITY_REACHED = 2
    NOT_SELECTED = 3
    BREACHED_SLA = 4


class ChoiceReason(ShortNamedEnum):
    UNSPECIFIED = 0
    FIXED_OWNER = 1
    ROUND_ROBIN_TURN = 2
    WEIGHTED_TURN = 3
    LEAST_LOADED = 4
    FALLBACK = 5
    ESCALATION = 6
    NONE_AVAILABLE = 7


_STRATEGY_REASON = {
    Strategy.FIXED_OWNER: ChoiceReason.FIXED_OWNER,
    Strategy.ROUND_ROBIN: ChoiceReason.ROUND_ROBIN_TURN,
    Strategy.WEIGHTED: ChoiceReason.WEIGHTED_TURN,
    Strategy.LEAST_LOADED: ChoiceReason.LEAST_LOADED,
}
_SKIP_TEXT = {
    SkipReason.OUT_OF_OFFICE: "out of office",
    SkipReason.CAPACITY_REACHED: "capacity reached",
    SkipReason.BREACHED_SLA: "breached the SLA",
    SkipReason.NOT_SELECTED: "not selected",
}


@dataclass(frozen=True, slots=True)
class OwnerLoad:
    """Assignments received today (in the configuration's time zone) and still open."""

    assigned_today: int = 0
    open_assignments: int = 0


_IDLE = OwnerLoad()


@dataclass(frozen=True, slots=True, kw_only=True)
class BrandState:
    """`turn` counts round-robin turns taken; `current_weights` is the smooth weighted round
    robin's state per owner id."""

    turn: int = 0
    current_weights: Mapping[str, int] = field(default_factory=dict)
    loads: Mapping[str, OwnerLoad] = field(default_factory=dict)

    def load(self, owner_id: str) -> OwnerLoad:
        return self.loads.get(owner_id, _IDLE)

    def assigned(self, owner_id: str) -> BrandState:
        """The state after one more assignment to the owner."""
        load = self.load(owner_id)
        loads = dict(self.loads)
        loads[owner_id] = OwnerLoad(load.assigned_today + 1, load.open_assignments + 1)
        return BrandState(turn=self.turn, current_weights=self.current_weights, loads=loads)


class Candidate(NamedTuple):
    """One owner as considered (a named tuple: a decision makes one per owner of the brand)."""

    owner_id: str
    skip_reason: SkipReason = SkipReason.UNSPECIFIED
    assigned_today: int = 0
    daily_capacity: int = 0
    open_assignments: int = 0
    weight: int = 1
    chosen: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class OwnerSelection:
    """`owner` is None when reason is NONE_AVAILABLE."""

    strategy: Strategy
    brand_id: str
    candidates: tuple[Candidate, ...]
    owner: Owner | None
    reason: ChoiceReason
    explanation: str


def _candidates(
    order: Sequence[Owner],
    state: BrandState,
    skips: Mapping[str, SkipReason | None],
    chosen: Owner | None,
) -> list[Candidate]:
    loads = state.loads
    out = []
    for owner in order:
        load = loads.get(owner.id, _IDLE)
        picked = owner is chosen
        out.append(
            Candidate(
                owner.id,
                SkipReason.UNSPECIFIED if picked else (skips[owner.id] or SkipReason.NOT_SELECTED),
                load.assigned_today,
                owner.daily_capacity,
                load.open_assignments,
                owner.effective_weight,
                picked,
            )
        )
    return out


def _unavailable(
    owners: Sequence[Owner], state: BrandState, at: datetime, excluded: frozenset[str]
) -> dict[str, SkipReason | None]:
    """Why each owner cannot take a lead now (None: free)."""
    loads = state.loads
    out: dict[str, SkipReason | None] = {}
    for owner in owners:
        skip = None
        if owner.id in excluded:
            skip = SkipReason.BREACHED_SLA
        elif owner.out_of_office or (owner.out_of_office_periods and owner.away(at)):
            skip = SkipReason.OUT_OF_OFFICE
        elif (
            owner.daily_capacity > 0
            and loads.get(owner.id, _IDLE).assigned_today >= owner.daily_capacity
        ):
            skip = SkipReason.CAPACITY_REACHED
        out[owner.id] = skip
    return out


def _skipped_text(candidates: list[Candidate]) -> str:
    skipped = [
        f"{c.owner_id} skipped ({_SKIP_TEXT[c.skip_reason]})"
        for c in candidates
        if not c.chosen and c.skip_reason is not SkipReason.NOT_SELECTED
    ]
    return "; ".join(skipped)


def select_owner(
    brand: Brand,
    strategy: Strategy,
    state: BrandState,
    at: datetime,
    *,
    fixed_owner_id: str = "",
    excluded: frozenset[str] = frozenset(),
) -> tuple[OwnerSelection, BrandState]:
    """The owner for one lead, and the brand's state after the assignment."""
    owners = brand.owners
    skips = _unavailable(owners, state, at, excluded)
    chosen: Owner | None = None
    order: Sequence[Owner]
    new_state = state
    head = ""
    if strategy is Strategy.FIXED_OWNER:
        fixed = brand.owner(fixed_owner_id)
        order = [fixed] if fixed is not None else []
        if fixed is not None and skips[fixed.id] is None:
            chosen = fixed
        head = f"fixed owner {fixed_owner_id}"
    elif strategy is Strategy.ROUND_ROBIN:
        n = len(owners)
        start = state.turn % n if n else 0
        order = owners[start:] + owners[:start]
        for offset, owner in enumerate(order):
            if skips[owner.id] is None:
                chosen = owner
                new_state = BrandState(
                    turn=state.turn + offset + 1,
                    current_weights=state.current_weights,
                    loads=state.loads,
                )
                break
        head = f"round robin turn {state.turn}"
    elif strategy is Strategy.WEIGHTED:
        order = owners
        free = [o for o in owners if skips[o.id] is None]
        if free:
            current = dict(state.current_weights)
            total = 0
            for owner in free:
                current[owner.id] = current.get(owner.id, 0) + owner.effective_weight
                total += owner.effective_weight
            chosen = max(free, key=lambda o: current[o.id])  # first of the highest
            current[chosen.id] -= total
            new_state = BrandState(turn=state.turn, current_weights=current, loads=state.loads)
        head = "weighted turn"
    else:
        order = owners
        free = [o for o in owners if skips[o.id] is None]
        if free:
            loads = state.loads
            chosen = min(
                free,
                key=lambda o: (
                    loads.get(o.id, _IDLE).open_assignments,
                    loads.get(o.id, _IDLE).assigned_today,
                ),
            )
        head = "least loaded"

    reason = _STRATEGY_REASON.get(strategy, ChoiceReason.NONE_AVAILABLE)
    if chosen is None:
        chosen, reason = _fallback(brand, excluded)
    if chosen is None or chosen in order:
        candidates = _candidates(order, state, skips, chosen)
    else:  # a fallback owner outside the order (fixed owner)
        candidates = _candidates(order, state, skips, None)
        candidates += _candidates((chosen,), state, {}, chosen)
    if chosen is not None:
        new_state = new_state.assigned(chosen.id)
    explanation = _explain(head, reason, chosen, candidates, state)
    selection = OwnerSelection(
        strategy=strategy,
        brand_id=brand.id,
        candidates=tuple(candidates),
        owner=chosen,
        reason=reason,
        explanation=explanation,
    )
    return selection, new_state


def _fallback(brand: Brand, excluded: frozenset[str]) -> tuple[Owner | None, ChoiceReason]:
    fallback = brand.owner(brand.fallback_owner_id) if brand.fallback_owner_id else None
    if fallback is None or fallback.id in excluded:
        return None, ChoiceReason.NONE_AVAILABLE
    return fallback, ChoiceReason.FALLBACK


def _explain(
    head: str,
    reason: ChoiceReason,
    chosen: Owner | None,
    candidates: list[Candidate],
    state: BrandState,
) -> str:
    parts = [head] if head else []
    skipped = _skipped_text(candidates)
    if skipped:
        parts.append(skipped)
    if reason is ChoiceReason.FALLBACK and chosen is not None:
        parts.append(f"no owner free: fallback owner {chosen.id}")
    elif reason is ChoiceReason.NONE_AVAILABLE:
        parts.append("no owner free and no fallback owner: routed without owner")
    elif reason is ChoiceReason.LEAST_LOADED and chosen is not None:
        load = state.load(chosen.id)
        parts.append(
            f"{chosen.id} chosen ({load.open_assignments} open, {load.assigned_today} today)"
        )
    elif chosen is not None:
        parts.append(f"{chosen.id} chosen")
    return "; ".join(parts)


def select_escalation(
    brand: Brand, escalation_owner_id: str, breached_owner_id: str
) -> OwnerSelection | None:
    """The escalation target for a breached assignment: `escalation_owner_id` in the brand,
    else the brand's fallback owner; never the owner who breached. Exempt from capacity and
    out-of-office (escalation must reach someone)."""
    target = brand.owner(escalation_owner_id) if escalation_owner_id else None
    reason = ChoiceReason.ESCALATION
    if target is None:
        target = brand.owner(brand.fallback_owner_id) if brand.fallback_owner_id else None
        reason = ChoiceReason.FALLBACK
    if target is None or target.id == breached_owner_id:
        return None
    why = (
        f"escalated to {target.id}"
        if reason is ChoiceReason.ESCALATION
        else f"no escalation owner {escalation_owner_id or '(none)'} in brand: fallback owner "
        f"{target.id}"
    )
    return OwnerSelection(
        strategy=Strategy.UNSPECIFIED,
        brand_id=brand.id,
        candidates=(Candidate(owner_id=target.id, weight=target.effective_weight, chosen=True),),
        owner=target,
        reason=reason,
        explanation=why,
    )
