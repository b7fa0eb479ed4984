from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction as F

import pytest

from leadflow_attribution.domain.errors import InvalidInput
from leadflow_attribution.domain.heuristics import (
    first_touch,
    heuristic_shares,
    last_touch,
    linear,
    time_decay,
    u_shaped,
    w_shaped,
)
from leadflow_attribution.domain.journey import Conversion, Touchpoint, build_journey
from leadflow_attribution.domain.models import AttributionModel, AttributionOptions

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
WEEK = timedelta(days=7)
M = AttributionModel


def journey_of(n: int, channels: list[str] | None = None) -> tuple[Touchpoint, ...]:
    """n touchpoints one day apart, the newest one day before the conversion."""
    names = channels or ["email"] * n
    return tuple(Touchpoint(f"e{i}", AT - (n - i) * DAY, names[i]) for i in range(n))


def conversion(opportunity_at: datetime | None = None) -> Conversion:
    return Conversion("c1", "lead-1", "purchase", AT, Decimal("10"), "USD", opportunity_at)


# Hand-computed shares for 0, 1, 2, 3 and 7 touchpoints (no opportunity touch).
EXPECTED: dict[AttributionModel, dict[int, tuple[F, ...]]] = {
    M.FIRST_TOUCH: {
        0: (),
        1: (F(1),),
        2: (F(1), F(0)),
        3: (F(1), F(0), F(0)),
        7: (F(1), *[F(0)] * 6),
    },
    M.LAST_TOUCH: {
        0: (),
        1: (F(1),),
        2: (F(0), F(1)),
        3: (F(0), F(0), F(1)),
        7: (*[F(0)] * 6, F(1)),
    },
    M.LINEAR: {
        0: (),
        1: (F(1),),
        2: (F(1, 2), F(1, 2)),
        3: (F(1, 3),) * 3,
        7: (F(1, 7),) * 7,
    },
    M.U_SHAPED: {
        0: (),
        1: (F(1),),
        2: (F(1, 2), F(1, 2)),
        3: (F(2, 5), F(1, 5), F(2, 5)),
        7: (F(2, 5), *[F(1, 25)] * 5, F(2, 5)),
    },
    M.W_SHAPED: {  # without an opportunity touch it is U-shaped
        0: (),
        1: (F(1),),
        2: (F(1, 2), F(1, 2)),
        3: (F(2, 5), F(1, 5), F(2, 5)),
        7: (F(2, 5), *[F(1, 25)] * 5, F(2, 5)),
    },
}


@pytest.mark.parametrize("model", list(EXPECTED))
@pytest.mark.parametrize("n", [0, 1, 2, 3, 7])
def test_position_models_on_hand_computed_fixtures(model, n):
    shares = heuristic_shares(model, journey_of(n), conversion(), AttributionOptions())
    assert shares == EXPECTED[model][n]


def test_time_decay_with_no_and_one_touchpoint():
    assert time_decay((), WEEK) == ()
    assert time_decay(journey_of(1), WEEK) == (F(1),)


def test_time_decay_between_half_lives_normalises_the_float_weights_exactly():
    # One day apart, half-life 7 days: the older weighs 2^(-1/7) of the newer.
    shares = time_decay(journey_of(2), WEEK)
    older = F(2.0 ** (-1 / 7))
    assert shares == (older / (older + 1), 1 / (older + 1))
    assert sum(shares) == 1


def test_time_decay_at_exact_half_lives_three_touchpoints():
    # 14, 7 and 0 days before the conversion: weights 1/4, 1/2, 1.
    journey = tuple(Touchpoint(f"e{d}", AT - timedelta(days=d), "email") for d in (14, 7, 0))
    assert time_decay(journey, WEEK) == (F(1, 7), F(2, 7), F(4, 7))


def test_time_decay_at_exact_half_lives_seven_touchpoints():
    # 6, 5, ..., 0 half-lives before: weights 1/64 .. 1, total 127/64.
    journey = tuple(Touchpoint(f"e{k}", AT - (6 - k) * WEEK, "email") for k in range(7))
    assert time_decay(journey, WEEK) == tuple(F(2**k, 127) for k in range(7))


def test_time_decay_when_the_newest_touch_is_before_the_conversion():
    # Two and one half-lives before the conversion: weights 1/4 and 1/2.
    journey = (Touchpoint("a", AT - 2 * WEEK, "x"), Touchpoint("b", AT - WEEK, "x"))
    assert time_decay(journey, WEEK) == (F(1, 3), F(2, 3))


def test_time_decay_custom_half_life_and_simultaneous_touches():
    journey = (
        Touchpoint("a", AT - 2 * DAY, "x"),
        Touchpoint("b", AT - 2 * DAY, "y"),
        Touchpoint("c", AT, "z"),
    )
    assert time_decay(journey, 2 * DAY) == (F(1, 4), F(1, 4), F(1, 2))


def test_time_decay_never_underflows_to_zero_for_an_old_journey():
    journey = (
        Touchpoint("a", AT - 20_000 * WEEK, "x"),
        Touchpoint("b", AT - 10_000 * WEEK, "y"),
    )
    shares = time_decay(journey, WEEK)
    assert shares == (F(0), F(1))


def test_time_decay_refuses_a_non_positive_half_life():
    with pytest.raises(InvalidInput) as caught:
        time_decay(journey_of(2), timedelta(0))
    assert caught.value.violations[0].field == "options.time_decay_half_life"


def test_last_touch_ignoring_direct_picks_the_last_non_direct():
    journey = journey_of(4, ["email", "paid_search", "direct", "Direct"])
    assert last_touch(journey, ignore_direct=True) == (F(0), F(1), F(0), F(0))
    assert last_touch(journey, ignore_direct=False) == (F(0), F(0), F(0), F(1))


def test_last_touch_ignoring_direct_falls_back_to_the_last_direct():
    journey = journey_of(3, ["direct", "direct", "direct"])
    assert last_touch(journey, ignore_direct=True) == (F(0), F(0), F(1))


def test_last_touch_option_reaches_the_model_through_options():
    journey = journey_of(2, ["email", "direct"])
    options = AttributionOptions(last_touch_ignore_direct=True)
    assert heuristic_shares(M.LAST_TOUCH, journey, conversion(), options) == (F(1), F(0))


def test_ties_in_time_are_credited_in_event_id_order():
    same = AT - DAY
    events = [Touchpoint("b", same, "social"), Touchpoint("a", same, "email")]
    journey = build_journey(events, conversion(), 90 * DAY)
    assert [t.event_id for t in journey] == ["a", "b"]
    first = heuristic_shares(M.FIRST_TOUCH, journey, conversion(), AttributionOptions())
    assert first == (F(1), F(0))


@pytest.mark.parametrize(
    ("n", "opportunity", "expected"),
    [
        # missing, first, last: U-shaped
        (7, None, (F(2, 5), *[F(1, 25)] * 5, F(2, 5))),
        (7, 0, (F(2, 5), *[F(1, 25)] * 5, F(2, 5))),
        (7, 6, (F(2, 5), *[F(1, 25)] * 5, F(2, 5))),
        # in the middle: 30/30/30, 10% over the four others
        (7, 3, (F(3, 10), F(1, 40), F(1, 40), F(3, 10), F(1, 40), F(1, 40), F(3, 10))),
        (4, 1, (F(3, 10), F(3, 10), F(1, 10), F(3, 10))),
        # no others: the 10% goes evenly to the three key touches
        (3, 1, (F(1, 3), F(1, 3), F(1, 3))),
        (3, 0, (F(2, 5), F(1, 5), F(2, 5))),
        (2, 1, (F(1, 2), F(1, 2))),
        (1, 0, (F(1),)),
        (0, None, ()),
    ],
)
def test_w_shaped_opportunity_first_last_missing_and_middle(n, opportunity, expected):
    assert w_shaped(n, opportunity) == expected


def test_w_shaped_anchors_on_the_stage_change_time():
    journey = journey_of(7)  # e0 .. e6, 7 .. 1 days before the conversion
    # Entered opportunity 3.5 days before: the last touch at or before it is e3 (4 days).
    anchored = conversion(opportunity_at=AT - timedelta(days=3, hours=12))
    shares = heuristic_shares(M.W_SHAPED, journey, anchored, AttributionOptions())
    assert shares == (F(3, 10), F(1, 40), F(1, 40), F(3, 10), F(1, 40), F(1, 40), F(3, 10))
    # Entered before the first touch, or after the conversion: U-shaped.
    for when in (AT - 30 * DAY, AT + DAY):
        shares = heuristic_shares(M.W_SHAPED, journey, conversion(when), AttributionOptions())
        assert shares == EXPECTED[M.U_SHAPED][7]


def test_plain_helpers_agree_with_the_dispatcher():
    assert first_touch(3) == EXPECTED[M.FIRST_TOUCH][3]
    assert linear(7) == EXPECTED[M.LINEAR][7]
    assert u_shaped(7) == EXPECTED[M.U_SHAPED][7]


@pytest.mark.parametrize("model", [M.MARKOV, M.SHAPLEY])
def test_data_driven_models_are_not_heuristics(model):
    with pytest.raises(ValueError, match="data-driven"):
        heuristic_shares(model, journey_of(2), conversion(), AttributionOptions())


def test_default_options_follow_design():
    options = AttributionOptions()
    assert options.lookback_window == timedelta(days=90)
    assert options.time_decay_half_life == timedelta(days=7)
    assert options.last_touch_ignore_direct is False
    assert options.markov_order == 1
    assert options.violations() == ()


def test_option_violations_name_each_field():
    options = AttributionOptions(
        lookback_window=timedelta(minutes=59),
        time_decay_half_life=timedelta(seconds=59),
        markov_order=5,
    )
    assert [(v.field, v.code) for v in options.violations()] == [
        ("options.lookback_window", "OUT_OF_RANGE"),
        ("options.time_decay_half_life", "OUT_OF_RANGE"),
        ("options.markov_order", "OUT_OF_RANGE"),
    ]
    too_long = AttributionOptions(lookback_window=timedelta(days=400))
    assert too_long.violations()[0].field == "options.lookback_window"
    assert too_long.violations(retention=timedelta(days=730)) == ()
    assert AttributionOptions(markov_order=0).violations()[0].field == "options.markov_order"
