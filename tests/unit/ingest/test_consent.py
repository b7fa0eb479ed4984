"""Consent: newest decision wins, in any order; what tracking consent means for events."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadflow_ingest.domain.consent import (
    PURPOSES,
    ConsentDecision,
    ConsentState,
    apply_decisions,
    tracking_verdict,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def granted(hours: float, source: str = "signup_form") -> ConsentDecision:
    return ConsentDecision("granted", source, T0 + timedelta(hours=hours))


def withdrawn(hours: float, source: str = "preference_center") -> ConsentDecision:
    return ConsentDecision("withdrawn", source, T0 + timedelta(hours=hours))


def test_first_decisions_are_changes() -> None:
    state, changed = apply_decisions(None, {"email": granted(0), "tracking": granted(0)})
    assert state == ConsentState(tracking=granted(0), email=granted(0))
    assert changed == ["tracking", "email"]


def test_a_newer_decision_replaces_and_an_older_one_is_ignored() -> None:
    state = ConsentState(tracking=granted(10))
    newer, changed = apply_decisions(state, {"tracking": withdrawn(11)})
    assert newer.tracking == withdrawn(11) and changed == ["tracking"]
    older, changed = apply_decisions(state, {"tracking": withdrawn(9)})
    assert older == state and changed == []


def test_a_newer_decision_with_the_same_status_is_stored_but_is_no_change() -> None:
    state = ConsentState(sms=granted(1, "import"))
    after, changed = apply_decisions(state, [("sms", granted(2, "sms_keyword"))])
    assert after.sms == granted(2, "sms_keyword")
    assert changed == []


def test_at_the_same_instant_withdrawal_wins() -> None:
    state = ConsentState(tracking=granted(5))
    after, changed = apply_decisions(state, {"tracking": withdrawn(5)})
    assert after.tracking == withdrawn(5) and changed == ["tracking"]
    kept, changed = apply_decisions(after, {"tracking": granted(5)})
    assert kept.tracking == withdrawn(5) and changed == []


def test_several_decisions_for_one_purpose_in_one_call() -> None:
    decisions = [
        ("portfolio_sharing", granted(3)),
        ("portfolio_sharing", withdrawn(1)),
        ("portfolio_sharing", granted(2)),
    ]
    state, changed = apply_decisions(None, decisions)
    assert state.portfolio_sharing == granted(3)
    assert changed == ["portfolio_sharing"]


def test_unknown_purposes_and_statuses_are_refused() -> None:
    with pytest.raises(ValueError):
        apply_decisions(None, {"marketing": granted(0)})
    with pytest.raises(ValueError):
        ConsentDecision("maybe", "x", T0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ConsentDecision("granted", "x", datetime(2025, 1, 1))
    with pytest.raises(ValueError):
        ConsentState().get("marketing")


@pytest.mark.parametrize(
    ("state", "require", "verdict"),
    [
        (None, False, "allowed"),
        (None, True, "missing"),
        (ConsentState(email=granted(0)), True, "missing"),
        (ConsentState(tracking=granted(0)), True, "allowed"),
        (ConsentState(tracking=granted(0)), False, "allowed"),
        (ConsentState(tracking=withdrawn(0)), False, "withdrawn"),
        (ConsentState(tracking=withdrawn(0)), True, "withdrawn"),
    ],
)
def test_tracking_verdict(state: ConsentState | None, require: bool, verdict: str) -> None:
    assert tracking_verdict(state, require) == verdict


decisions = st.lists(
    st.tuples(
        st.sampled_from(PURPOSES),
        st.builds(
            ConsentDecision,
            st.sampled_from(["granted", "withdrawn"]),
            st.sampled_from(["form", "import", "api"]),
            st.integers(0, 5).map(lambda h: T0 + timedelta(hours=h)),
        ),
    ),
    max_size=12,
)


@given(decisions, st.randoms(use_true_random=False))
def test_newest_wins_in_any_order_and_any_grouping(
    items: list[tuple[str, ConsentDecision]], rnd: random.Random
) -> None:
    at_once, _ = apply_decisions(None, items)
    shuffled = list(items)
    rnd.shuffle(shuffled)
    one_by_one: ConsentState | None = None
    for item in shuffled:
        one_by_one, _ = apply_decisions(one_by_one, [item])
    assert (one_by_one or ConsentState()) == at_once
    for purpose in PURPOSES:
        mine = [d for p, d in items if p == purpose]
        stored = at_once.get(purpose)
        if not mine:
            assert stored is None
        else:
            assert stored is not None
            assert stored.decided_at == max(d.decided_at for d in mine)


@given(decisions, decisions)
def test_changed_lists_exactly_the_purposes_whose_status_changed(
    first: list[tuple[str, ConsentDecision]], second: list[tuple[str, ConsentDecision]]
) -> None:
    before, _ = apply_decisions(None, first)
    after, changed = apply_decisions(before, second)
    assert changed == [p for p in PURPOSES if before.status(p) != after.status(p)]
