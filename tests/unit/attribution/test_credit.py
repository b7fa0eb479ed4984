from __future__ import annotations

from decimal import Decimal as D
from fractions import Fraction as F

import pytest

from leadflow_attribution.domain.credit import Credit, allocate, apportion, integer_shares
from leadflow_attribution.domain.errors import InvalidInput


def shares_of(credits: list[Credit]) -> list[str]:
    return [format(c.share, "f") for c in credits]


def values_of(credits: list[Credit]) -> list[D]:
    return [c.value for c in credits]


def test_thirds_put_the_residue_on_the_earliest_of_equal_shares():
    credits = allocate([F(1, 3)] * 3, D("100.00"), 2)
    assert shares_of(credits) == [
        "0.333333333333333334",  # the proto's example
        "0.333333333333333333",
        "0.333333333333333333",
    ]
    assert values_of(credits) == [D("33.34"), D("33.33"), D("33.33")]


def test_residue_goes_to_the_largest_share_not_the_first():
    # 1 cent over 1/6, 1/2, 1/3: 0.17, 0.5 and 0.33 cents round to 0 (half to even);
    # the residue cent goes to the 1/2 share.
    credits = allocate([F(1, 6), F(1, 2), F(1, 3)], D("0.01"), 2)
    assert values_of(credits) == [D("0.00"), D("0.01"), D("0.00")]
    assert shares_of(credits) == [
        "0.166666666666666667",
        "0.500000000000000000",
        "0.333333333333333333",
    ]


def test_seven_way_split_of_a_dollar():
    credits = allocate([F(1, 7)] * 7, D("1.00"), 2)
    # 14.29 cents round to 14; 7 x 14 = 98; the first takes the 2 cents left.
    assert values_of(credits) == [D("0.16")] + [D("0.14")] * 6
    assert sum(values_of(credits)) == D("1.00")
    # 1/7 = 0.142857142857142857|142..., x 7 leaves 1e-18 for the first share.
    assert shares_of(credits)[0] == "0.142857142857142858"
    assert sum(c.share for c in credits) == 1


def test_zero_decimal_currency_splits_whole_units():
    assert values_of(allocate([F(1, 3)] * 3, D("100"), 0)) == [D(34), D(33), D(33)]


def test_value_finer_than_the_currency_is_split_at_its_own_precision():
    credits = allocate([F(1, 3)] * 3, D("10.005"), 2)
    assert values_of(credits) == [D("3.335")] * 3
    assert sum(values_of(credits)) == D("10.005")


def test_a_negative_residue_never_makes_a_credit_negative():
    # 3 cents over 0.28, 0.18 x 4: 0.84 and 0.54 all round up to 1 (5 cents, 2 too many);
    # the largest share gives up its cent, then the earliest of the next largest.
    credits = allocate([F(7, 25), *[F(9, 50)] * 4], D("0.03"), 2)
    assert values_of(credits) == [D("0.00"), D("0.00"), D("0.01"), D("0.01"), D("0.01")]


def test_unnormalised_and_float_shares_are_normalised_exactly():
    credits = allocate([0.1, 0.2], D("3"), 2)
    assert sum(c.share for c in credits) == 1
    assert values_of(credits) == [D("1.00"), D("2.00")]
    assert integer_shares([0.5, F(1, 4), 0.25]) == ([2, 1, 1], 4)


def test_zero_value_and_zero_shares():
    credits = allocate([1, 0], D("0"), 2)
    assert values_of(credits) == [D("0.00"), D("0.00")]
    assert [c.share for c in credits] == [D(1), D(0)]


def test_an_empty_journey_gets_no_credits():
    assert allocate([], D("10"), 2) == []


@pytest.mark.parametrize(
    ("shares", "value", "exponent", "field"),
    [
        ([-0.5, 1.5], D(1), 2, "shares[0]"),
        ([float("nan")], D(1), 2, "shares[0]"),
        ([1.0, float("inf")], D(1), 2, "shares[1]"),
        ([0, 0], D(1), 2, "shares"),
        ([1], D(-1), 2, "value.units"),
        ([1], D("NaN"), 2, "value.units"),
        ([1], D(1), 10, "currency_exponent"),
        ([1], D(1), -1, "currency_exponent"),
    ],
)
def test_bad_input_is_refused_naming_the_field(shares, value, exponent, field):
    with pytest.raises(InvalidInput) as caught:
        allocate(shares, value, exponent)
    assert caught.value.violations[0].field == field


def test_apportion_splits_any_total_at_up_to_18_digits():
    assert apportion([1, 1, 1], D(7), 18) == [
        D("2.333333333333333334"),
        D("2.333333333333333333"),
        D("2.333333333333333333"),
    ]
    assert apportion([0.75, 0.25], D("150.00"), 2) == [D("112.50"), D("37.50")]
    assert apportion([], D(1), 2) == []
    with pytest.raises(InvalidInput):
        apportion([1], D(1), 19)
