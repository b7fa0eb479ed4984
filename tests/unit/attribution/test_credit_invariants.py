"""Properties every model's credit keeps, for any journey (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from leadflow_attribution.domain.channel_weights import shares_from_channel_weights
from leadflow_attribution.domain.credit import SHARE_DIGITS, allocate
from leadflow_attribution.domain.heuristics import heuristic_shares
from leadflow_attribution.domain.journey import (
    Conversion,
    Touchpoint,
    build_journey,
    channel_path,
)
from leadflow_attribution.domain.models import HEURISTIC_MODELS, AttributionOptions

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CHANNELS = ["email", "direct", "paid_search", "organic_social", ""]

hours_before = st.integers(min_value=-48, max_value=24 * 100)  # some after, some too old


@st.composite
def histories(draw: st.DrawFn) -> list[Touchpoint]:
    """Distinct events (unique ids), with ties in time likely."""
    count = draw(st.integers(min_value=0, max_value=12))
    return [
        Touchpoint(
            event_id=f"e{index:02d}",
            occurred_at=AT - timedelta(hours=draw(hours_before)),
            channel=draw(st.sampled_from(CHANNELS)),
            source=draw(st.sampled_from(["google", "newsletter", ""])),
        )
        for index in range(count)
    ]


@st.composite
def conversions(draw: st.DrawFn) -> Conversion:
    units = draw(st.integers(min_value=0, max_value=10**15))
    digits = draw(st.integers(min_value=0, max_value=9))
    opportunity = draw(st.none() | hours_before)
    return Conversion(
        conversion_id="c1",
        subject="lead-1",
        type="purchase",
        occurred_at=AT,
        value=Decimal(units).scaleb(-digits),
        currency="USD",
        opportunity_at=None if opportunity is None else AT - timedelta(hours=opportunity),
    )


options_strategy = st.builds(
    AttributionOptions,
    last_touch_ignore_direct=st.booleans(),
    time_decay_half_life=st.integers(min_value=1, max_value=60 * 24 * 60).map(
        lambda minutes: timedelta(minutes=minutes)
    ),
)


@given(histories(), conversions(), options_strategy, st.integers(min_value=0, max_value=4))
def test_every_model_gives_non_negative_shares_summing_exactly_to_one(
    history, conversion, options, exponent
):
    journey = build_journey(history, conversion, options.lookback_window)
    for model in HEURISTIC_MODELS:
        shares = heuristic_shares(model, journey, conversion, options)
        assert len(shares) == len(journey)
        assert all(share >= 0 for share in shares)
        if journey:
            assert sum(shares) == 1
        credits = allocate(shares, conversion.value, exponent)
        assert len(credits) == len(journey)
        if journey:
            assert sum(c.share for c in credits) == 1
            assert sum(c.value for c in credits) == conversion.value
        for credit in credits:
            assert credit.share >= 0
            assert credit.value >= 0
            assert credit.share.as_tuple().exponent == -SHARE_DIGITS


@given(
    histories(),
    conversions(),
    options_strategy,
    st.randoms(use_true_random=False),
    st.lists(st.integers(min_value=0, max_value=11), max_size=8),
)
def test_results_do_not_depend_on_arrival_order_or_duplicates(
    history, conversion, options, rng, duplicated
):
    arrived = history + [history[i] for i in duplicated if i < len(history)]
    rng.shuffle(arrived)
    journey = build_journey(history, conversion, options.lookback_window)
    again = build_journey(arrived, conversion, options.lookback_window)
    assert again == journey
    for model in HEURISTIC_MODELS:
        expected = allocate(
            heuristic_shares(model, journey, conversion, options), conversion.value, 2
        )
        got = allocate(heuristic_shares(model, again, conversion, options), conversion.value, 2)
        assert got == expected


@given(
    histories(),
    conversions(),
    st.dictionaries(
        st.sampled_from([*CHANNELS[:-1], "(none)"]),
        st.floats(min_value=0, max_value=1, allow_nan=False),
    ),
)
def test_data_driven_shares_are_non_negative_and_sum_exactly_to_one(history, conversion, weights):
    journey = build_journey(history, conversion, timedelta(days=90))
    shares = shares_from_channel_weights(channel_path(journey), weights)
    assert len(shares) == len(journey)
    assert all(share >= 0 for share in shares)
    if journey:
        assert sum(shares) == 1
        credits = allocate(shares, conversion.value, 2)
        assert sum(c.value for c in credits) == conversion.value


share_values = st.one_of(
    st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_subnormal=True),
    st.fractions(min_value=0, max_value=1000, max_denominator=10**6),
    st.integers(min_value=0, max_value=10**6),
)


@given(
    st.lists(share_values, min_size=1, max_size=15).filter(lambda s: any(x > 0 for x in s)),
    st.integers(min_value=0, max_value=10**18),
    st.integers(min_value=0, max_value=9),
    st.integers(min_value=0, max_value=9),
)
def test_allocate_is_exact_for_any_shares_value_and_exponent(shares, units, digits, exponent):
    value = Decimal(units).scaleb(-digits)
    credits = allocate(shares, value, exponent)
    assert sum(c.share for c in credits) == 1
    assert sum(c.value for c in credits) == value
    assert all(c.share >= 0 and c.value >= 0 for c in credits)
    # The residue goes to the largest share, so a zero share never gets anything.
    for share, credit in zip(shares, credits, strict=True):
        if share == 0:
            assert credit.share == 0
            assert credit.value == 0
