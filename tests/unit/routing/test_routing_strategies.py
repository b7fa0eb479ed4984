"""Owner selection: every strategy, capacity, out of office, fallback, SLA exclusion."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from leadflow_routing.domain.config import Brand, Owner, Strategy, TimeRange
from leadflow_routing.domain.strategies import (
    BrandState,
    ChoiceReason,
    OwnerLoad,
    SkipReason,
    select_escalation,
    select_owner,
)

NOW = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)


def brand(*owners: Owner, fallback: str = "") -> Brand:
    return Brand(id="b", owners=owners, fallback_owner_id=fallback)


def run(
    b: Brand, strategy: Strategy, n: int, state: BrandState | None = None, **kw: str
) -> list[str | None]:
    state = state or BrandState()
    picked: list[str | None] = []
    for _ in range(n):
        selection, state = select_owner(b, strategy, state, NOW, **kw)  # type: ignore[arg-type]
        picked.append(selection.owner.id if selection.owner else None)
    return picked


def test_round_robin_takes_turns_in_configuration_order() -> None:
    b = brand(Owner(id="ana"), Owner(id="bo"), Owner(id="cy"))
    assert run(b, Strategy.ROUND_ROBIN, 7) == ["ana", "bo", "cy", "ana", "bo", "cy", "ana"]


def test_round_robin_skips_out_of_office_and_the_turn_moves_past_the_chosen() -> None:
    b = brand(Owner(id="ana"), Owner(id="bo", out_of_office=True), Owner(id="cy"))
    selection, state = select_owner(b, Strategy.ROUND_ROBIN, BrandState(turn=1), NOW)
    assert selection.owner is not None and selection.owner.id == "cy"
    assert selection.reason is ChoiceReason.ROUND_ROBIN_TURN
    assert [(c.owner_id, c.skip_reason) for c in selection.candidates] == [
        ("bo", SkipReason.OUT_OF_OFFICE),
        ("cy", SkipReason.UNSPECIFIED),
        ("ana", SkipReason.NOT_SELECTED),
    ]
    assert state.turn == 3
    assert selection.explanation == "round robin turn 1; bo skipped (out of office); cy chosen"


def test_out_of_office_periods_count_only_inside_the_period() -> None:
    away = TimeRange(start=NOW - timedelta(days=1), end=NOW + timedelta(hours=1))
    later = TimeRange(start=NOW + timedelta(days=1), end=NOW + timedelta(days=2))
    b = brand(
        Owner(id="ana", out_of_office_periods=(away,)),
        Owner(id="bo", out_of_office_periods=(later,)),
    )
    assert run(b, Strategy.ROUND_ROBIN, 2) == ["bo", "bo"]


def test_capacity_caps_skip_a_full_owner() -> None:
    b = brand(Owner(id="ana", daily_capacity=2), Owner(id="bo", daily_capacity=1))
    state = BrandState()
    picked = run(b, Strategy.ROUND_ROBIN, 4, state)
    assert picked == ["ana", "bo", "ana", None]


def test_fallback_owner_when_none_is_free_is_exempt_from_capacity() -> None:
    b = brand(
        Owner(id="ana", daily_capacity=1),
        Owner(id="boss", daily_capacity=1, out_of_office=True),
        fallback="boss",
    )
    picked = run(b, Strategy.ROUND_ROBIN, 3)
    assert picked == ["ana", "boss", "boss"]
    selection, _ = select_owner(
        b, Strategy.ROUND_ROBIN, BrandState(loads={"ana": OwnerLoad(1, 1)}), NOW
    )
    assert selection.reason is ChoiceReason.FALLBACK
    assert "no owner free: fallback owner boss" in selection.explanation
    assert [c.chosen for c in selection.candidates] == [False, True]


def test_no_owner_and_no_fallback_routes_without_owner() -> None:
    selection, state = select_owner(
        brand(Owner(id="ana", out_of_office=True)), Strategy.LEAST_LOADED, BrandState(), NOW
    )
    assert selection.owner is None
    assert selection.reason is ChoiceReason.NONE_AVAILABLE
    assert state == BrandState()


def test_fixed_owner_and_its_fallback() -> None:
    b = brand(Owner(id="ana", daily_capacity=1), Owner(id="bo"), fallback="bo")
    assert run(b, Strategy.FIXED_OWNER, 2, fixed_owner_id="ana") == ["ana", "bo"]


def test_weighted_is_proportional_and_smooth() -> None:
    b = brand(Owner(id="ana", weight=3), Owner(id="bo", weight=1), Owner(id="cy"))
    picked = run(b, Strategy.WEIGHTED, 50)
    assert Counter(picked) == {"ana": 30, "bo": 10, "cy": 10}
    # smooth: the heavy owner never gets more than its share in a row
    assert picked[:5] == ["ana", "bo", "ana", "cy", "ana"]


def test_weighted_skips_a_full_owner_and_shares_among_the_rest() -> None:
    b = brand(Owner(id="ana", weight=3, daily_capacity=2), Owner(id="bo", weight=1))
    assert Counter(run(b, Strategy.WEIGHTED, 10)) == {"ana": 2, "bo": 8}


def test_least_loaded_picks_fewest_open_then_fewest_today_then_order() -> None:
    b = brand(Owner(id="ana"), Owner(id="bo"), Owner(id="cy"))
    state = BrandState(loads={"ana": OwnerLoad(5, 2), "bo": OwnerLoad(3, 2), "cy": OwnerLoad(0, 3)})
    selection, state = select_owner(b, Strategy.LEAST_LOADED, state, NOW)
    assert selection.owner is not None and selection.owner.id == "bo"
    assert state.load("bo") == OwnerLoad(4, 3)
    assert run(b, Strategy.LEAST_LOADED, 3) == ["ana", "bo", "cy"]


def test_sla_exclusion_skips_the_owner_who_breached() -> None:
    b = brand(Owner(id="ana"), Owner(id="bo"))
    selection, _ = select_owner(
        b, Strategy.ROUND_ROBIN, BrandState(), NOW, excluded=frozenset({"ana"})
    )
    assert selection.owner is not None and selection.owner.id == "bo"
    assert selection.candidates[0].skip_reason is SkipReason.BREACHED_SLA


def test_escalation_goes_to_the_escalation_owner_else_the_fallback_never_the_breacher() -> None:
    b = brand(Owner(id="ana"), Owner(id="head"), fallback="ana")
    chosen = select_escalation(b, "head", "ana")
    assert chosen is not None and chosen.owner is not None and chosen.owner.id == "head"
    assert chosen.reason is ChoiceReason.ESCALATION
    fallback = select_escalation(b, "nobody", "bo")
    assert fallback is not None and fallback.reason is ChoiceReason.FALLBACK
    assert select_escalation(b, "nobody", "ana") is None
