from __future__ import annotations

from fractions import Fraction as F

from hypothesis import given
from hypothesis import strategies as st

from leadflow_attribution.domain.channel_weights import (
    channel_weight_numerators,
    shares_from_channel_weights,
)
from leadflow_attribution.domain.credit import allocate, allocate_numerators


def test_weights_are_split_evenly_among_touches_of_a_channel():
    shares = shares_from_channel_weights(["a", "b", "a"], {"a": 0.75, "b": 0.25, "c": 1.0})
    # a and b present: a 3/4 over two touches, b 1/4; c is absent and plays no part.
    assert shares == (F(3, 8), F(1, 4), F(3, 8))


def test_only_the_channels_present_are_normalised():
    assert shares_from_channel_weights(["b", "c"], {"a": 0.5, "b": 0.125, "c": 0.375}) == (
        F(1, 4),
        F(3, 4),
    )


def test_all_zero_or_unknown_channels_are_credited_linearly():
    assert shares_from_channel_weights(["x", "y", "x"], {"a": 1.0}) == (F(1, 3),) * 3
    assert shares_from_channel_weights(["a", "b"], {"a": 0.0, "b": 0.0}) == (F(1, 2),) * 2


def test_negative_and_nan_weights_count_as_zero():
    shares = shares_from_channel_weights(
        ["a", "b", "c"], {"a": -1e-17, "b": float("nan"), "c": 2.0}
    )
    assert shares == (F(0), F(0), F(1))


def test_an_empty_journey_has_no_shares():
    assert shares_from_channel_weights([], {"a": 1.0}) == ()


@given(
    st.lists(st.sampled_from("abcd"), max_size=9),
    st.dictionaries(
        st.sampled_from("abcde"),
        st.floats(min_value=-1.0, max_value=1e6) | st.just(float("nan")),
        max_size=5,
    ),
    st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False, allow_infinity=False),
)
def test_integer_weights_credit_exactly_as_the_shares_do(channels, weights, value):
    numerators = channel_weight_numerators(channels, weights)
    expected = allocate(shares_from_channel_weights(channels, weights), value, 2)
    assert allocate_numerators(numerators, sum(numerators), value, 2) == expected
