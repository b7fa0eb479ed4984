"""Which rules of a configuration a lead may match, found without running any CEL.

Each enabled rule is a bit: its position among the enabled rules. The guards of all the
conditions (conditions.py) are grouped by the fact they read, each distinct guard once with
the mask of the rules that hold it. For one lead, each fact is read once and each of its
guards decided once: the masks of the guards that fail are rules that cannot match (false &&
anything is false in CEL), those of the guards Python cannot decide are rules left to CEL even
when every other guard holds. The answers of a string or integer fact are kept per value, as
those values are few (brands, enum spellings, triggers, event counts).

A configuration of a few hundred rules typically leaves a handful to look at per lead, most
of them decided by their guards alone, so a decision often builds no CEL context at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from leadflow_routing.domain.conditions import Condition, Fact, Guard, fact_reader
from leadflow_routing.domain.snapshot import LeadSnapshot

_CACHE_LIMIT = 1024
"""Values kept per fact (lead ids and trigger details could be unbounded)."""


@dataclass(frozen=True, slots=True)
class _FactGuards:
    read: Callable[[LeadSnapshot, str, str], Any]
    guards: tuple[tuple[Guard, int], ...]
    answers: dict[Any, tuple[int, int]] = field(default_factory=dict)
    """(failed, undecided) masks per str or int value read."""

    def decide(self, value: Any) -> tuple[int, int]:
        failed = undecided = 0
        for guard, mask in self.guards:
            holds = guard.decide(value)
            if holds is False:
                failed |= mask
            elif holds is None:
                undecided |= mask
        return failed, undecided


@dataclass(frozen=True, slots=True)
class RuleIndex:
    everything: int
    """A bit per enabled rule."""
    only_guards: int
    """Rules whose condition is nothing but guards (or empty)."""
    facts: tuple[_FactGuards, ...]

    def screen(self, snapshot: LeadSnapshot, trigger: str, trigger_detail: str) -> tuple[int, int]:
        """(candidates, holding): the rules whose guards do not fail, and of those the ones
        whose condition holds without CEL."""
        failed = undecided = 0
        for facts in self.facts:
            value = facts.read(snapshot, trigger, trigger_detail)
            cls = type(value)
            if cls is str or cls is int:  # bool and float values are never kept
                found = facts.answers.get(value)
                if found is None:
                    found = facts.decide(value)
                    if len(facts.answers) < _CACHE_LIMIT:
                        facts.answers[value] = found
            else:
                found = facts.decide(value)
            failed |= found[0]
            undecided |= found[1]
        candidates = self.everything & ~failed
        return candidates, candidates & self.only_guards & ~undecided


def build_index(conditions: Sequence[Condition], *, guards: bool = True) -> RuleIndex:
    """The index of the enabled rules' conditions, in order. Without `guards` every rule is a
    candidate and none holds without CEL (the plain evaluation, to compare with)."""
    everything = (1 << len(conditions)) - 1
    if not guards:
        return RuleIndex(everything=everything, only_guards=0, facts=())
    only_guards = 0
    by_fact: dict[Fact, dict[Guard, int]] = {}
    for position, condition in enumerate(conditions):
        bit = 1 << position
        if condition.only_guards or condition.program is None:
            only_guards |= bit
        for guard in condition.guards:
            masks = by_fact.setdefault(guard.fact, {})
            masks[guard] = masks.get(guard, 0) | bit
    return RuleIndex(
        everything=everything,
        only_guards=only_guards,
        facts=tuple(
            _FactGuards(fact_reader(fact), tuple(masks.items())) for fact, masks in by_fact.items()
        ),
    )
