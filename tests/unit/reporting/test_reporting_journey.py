"""Journey domain: engagement trend thresholds, churn risk factors (each bounded, summing to
the risk) and milestones."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadflow_reporting.domain.journey import (
    DAY_US,
    EMAIL_BOUNCED,
    EMAIL_OPENED,
    EMAIL_SENT,
    MEETING_SCHEDULED,
    PURCHASE,
    JourneyEvent,
    MilestoneKind,
    Trend,
    churn,
    milestones,
    trend,
    windows,
)

NOW = 1_000 * DAY_US


def ev(days_ago: float, kind: int = 1, *, machine: bool = False, touch: bool = False, i: int = 0):
    return JourneyEvent(f"e{i}-{days_ago}", NOW - int(days_ago * DAY_US), kind, "b", machine, touch)


@pytest.mark.parametrize(
    ("recent", "previous", "expected"),
    [
        (13, 10, Trend.INCREASING),
        (12, 10, Trend.STABLE),
        (8, 10, Trend.STABLE),
        (7, 10, Trend.DECLINING),
        (0, 3, Trend.DECLINING),
        (2, 0, Trend.INCREASING),
        (0, 0, Trend.STABLE),
    ],
)
def test_trend_thresholds(recent: int, previous: int, expected: Trend) -> None:
    assert trend(recent, previous) is expected


def test_windows_ignore_machine_events() -> None:
    events = [ev(1), ev(27), ev(29), ev(55), ev(57), ev(2, machine=True)]
    assert windows(events, NOW) == (2, 2)


def test_an_active_subject_has_no_risk() -> None:
    assert churn([ev(d) for d in (1, 2, 30, 31)], NOW) == (0.0, [])


def test_long_inactivity_and_decline() -> None:
    risk, factors = churn([ev(40 + i * 0.1, i=i) for i in range(10)], NOW)
    codes = [f.code for f in factors]
    assert codes == ["days_since_last_activity", "declining_engagement"]
    assert factors[0].description == "No activity for 40 days"
    assert factors[0].contribution == pytest.approx(0.5 * (40 - 7) / 53)
    assert factors[1].contribution == pytest.approx(0.2)
    assert risk == pytest.approx(sum(f.contribution for f in factors))


def test_bounce_and_unanswered_outreach() -> None:
    events = [ev(3, EMAIL_SENT, i=i) for i in range(3)] + [ev(2, EMAIL_BOUNCED), ev(1)]
    risk, factors = churn(events, NOW)
    assert {f.code for f in factors} == {"email_bounced", "no_reply_to_outreach"}
    assert risk == pytest.approx(0.3)
    # An open after the bounce (by a human) clears both; a machine open clears neither.
    assert churn([*events, ev(0.5, EMAIL_OPENED)], NOW)[1] == []
    assert len(churn([*events, ev(0.5, EMAIL_OPENED, machine=True)], NOW)[1]) == 2


@given(st.lists(st.tuples(st.floats(0, 200), st.sampled_from([1, 6, 7, 10, 18])), max_size=40))
def test_risk_is_bounded_and_the_sum_of_its_factors(raw: list[tuple[float, int]]) -> None:
    risk, factors = churn([ev(d, k, i=i) for i, (d, k) in enumerate(raw)], NOW)
    assert 0 <= risk <= 1
    assert risk == pytest.approx(sum(f.contribution for f in factors))
    assert [f.contribution for f in factors] == sorted(
        (f.contribution for f in factors), reverse=True
    )


def test_milestones_in_time_order() -> None:
    buy = JourneyEvent(
        "p", NOW - 5 * DAY_US, PURCHASE, "b", False, False, "USD", Decimal("9.5"), "purchase"
    )
    events = [
        ev(30, touch=False, i=1),
        ev(20, touch=True, i=2),
        ev(10, MEETING_SCHEDULED, i=3),
        ev(8, MEETING_SCHEDULED, i=4),
        buy,
    ]
    out = milestones(events, NOW - 25 * DAY_US, [("anon-1", NOW - 24 * DAY_US)])
    assert [m.kind for m in out] == [
        MilestoneKind.FIRST_SEEN,
        MilestoneKind.IDENTIFIED,
        MilestoneKind.ALIASED,
        MilestoneKind.FIRST_TOUCH,
        MilestoneKind.FIRST_MEETING,
        MilestoneKind.CONVERSION,
    ]
    assert out[-1].value == Decimal("9.5") and "9.5 USD" in out[-1].description
