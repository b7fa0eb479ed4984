"""Acknowledgement SLA: deadlines, and what the SLA job does with a breached assignment.

REASSIGN picks the next free owner of the same brand by the rule's strategy, excluding every
owner who already breached on this lead (the fallback owner when none is free); ESCALATE goes
to the escalation owner (else the brand's fallback owner). When nobody else can take the lead
the assignment just becomes BREACHED and its owner can still acknowledge it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from leadflow_routing.domain.config import Brand, BreachAction, Sla, Strategy
from leadflow_routing.domain.snapshot import ShortNamedEnum
from leadflow_routing.domain.strategies import (
    BrandState,
    OwnerSelection,
    select_escalation,
    select_owner,
)


class AssignmentState(ShortNamedEnum):
    UNSPECIFIED = 0
    ASSIGNED = 1
    ACKNOWLEDGED = 2
    BREACHED = 3
    REASSIGNED = 4
    ESCALATED = 5


def acknowledge_by(sla: Sla, assigned_at: datetime) -> datetime | None:
    return assigned_at + sla.acknowledge_within if sla.enabled else None


def is_breached(state: AssignmentState, deadline: datetime | None, now: datetime) -> bool:
    return state is AssignmentState.ASSIGNED and deadline is not None and deadline <= now


@dataclass(frozen=True, slots=True)
class BreachOutcome:
    """`selection` is the replacement owner (None: nobody, state BREACHED)."""

    resulting_state: AssignmentState
    selection: OwnerSelection | None
    brand_state: BrandState


def decide_breach(
    sla: Sla,
    brand: Brand,
    strategy: Strategy,
    fixed_owner_id: str,
    breached_owners: frozenset[str],
    breached_owner_id: str,
    state: BrandState,
    now: datetime,
) -> BreachOutcome:
    """`breached_owners`: every owner who breached on this lead's assignment chain (the
    current one included), none of whom gets the lead again."""
    if sla.breach_action is BreachAction.ESCALATE:
        selection = select_escalation(brand, sla.escalation_owner_id, breached_owner_id)
        if selection is None or selection.owner is None:
            return BreachOutcome(AssignmentState.BREACHED, None, state)
        owner_id = selection.owner.id
        return BreachOutcome(AssignmentState.ESCALATED, selection, state.assigned(owner_id))
    selection, new_state = select_owner(
        brand,
        strategy if strategy is not Strategy.UNSPECIFIED else Strategy.ROUND_ROBIN,
        state,
        now,
        fixed_owner_id=fixed_owner_id,
        excluded=breached_owners | {breached_owner_id},
    )
    if selection.owner is None:
        return BreachOutcome(AssignmentState.BREACHED, None, state)
    return BreachOutcome(AssignmentState.REASSIGNED, selection, new_state)
