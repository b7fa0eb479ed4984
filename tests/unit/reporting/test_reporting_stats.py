"""The statistics against textbook values."""

from __future__ import annotations

import math

import pytest

from leadflow_reporting.domain.stats import (
    p_text,
    percent,
    two_proportion_z,
    two_sided_p,
    wilson_interval,
    z_quantile,
)


def test_two_proportion_z_matches_the_stat_trek_worked_example() -> None:
    # 38 of 100 women and 102 of 200 men caught a cold: pooled p = 0.467, SE = 0.061,
    # z = -2.13, two-tailed P = 0.033 (Stat Trek, "Hypothesis test: difference in
    # proportions").
    test = two_proportion_z(38, 100, 102, 200)
    assert test.z == pytest.approx(-2.13, abs=0.005)
    assert test.p_value == pytest.approx(0.0332, abs=0.0005)
    assert test.significant
    assert test.confidence == pytest.approx(1 - test.p_value)


def test_the_issue_example_is_significant_at_p_0_001() -> None:
    test = two_proportion_z(12, 48, 0, 40)
    assert test.z == pytest.approx(3.4028, abs=1e-3)
    assert p_text(test.p_value) == "p = 0.001"


def test_two_sided_p_of_standard_critical_values() -> None:
    assert two_sided_p(1.959964) == pytest.approx(0.05, abs=1e-6)
    assert two_sided_p(-2.575829) == pytest.approx(0.01, abs=1e-6)
    assert two_sided_p(0.0) == 1.0
    assert z_quantile(0.95) == pytest.approx(1.959964, abs=1e-6)


def test_no_difference_to_test() -> None:
    assert two_proportion_z(0, 10, 0, 20).p_value == 1.0
    assert two_proportion_z(5, 5, 7, 7).z == 0.0
    assert not two_proportion_z(1, 0, 1, 5).significant


def test_z_is_antisymmetric() -> None:
    a, b = two_proportion_z(30, 200, 45, 210), two_proportion_z(45, 210, 30, 200)
    assert a.z == pytest.approx(-b.z)
    assert a.p_value == pytest.approx(b.p_value)


@pytest.mark.parametrize(
    ("x", "n", "lower", "upper"),
    [
        # Newcombe (1998), Statistics in Medicine 17:857-872, Table I, method 3 (score).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_newcombe(x: int, n: int, lower: float, upper: float) -> None:
    lo, hi = wilson_interval(x, n, 0.95)
    assert lo == pytest.approx(lower, abs=1e-4)
    assert hi == pytest.approx(upper, abs=1e-4)


def test_wilson_of_an_empty_sample() -> None:
    assert wilson_interval(0, 0) == (0.0, 0.0)


def test_texts() -> None:
    assert percent(0.25) == "25%"
    assert percent(0.124) == "12.4%"
    assert percent(0.0) == "0%"
    assert p_text(0.0004) == "p < 0.001"
    assert p_text(0.0332) == "p = 0.033"
    assert math.isclose(two_sided_p(3.0), 0.0026998, abs_tol=1e-6)
