from __future__ import annotations

from fractions import Fraction as F

import pytest

from leadflow_attribution.domain.channel_paths import ChannelPath
from leadflow_attribution.domain.errors import InvalidInput
from leadflow_attribution.domain.markov import fit_markov, markov_states

# Small data set (ChannelAttribution's format: counts per distinct path). Hand-computed:
# order 1: (start) -> a 6/11, c 3/11, b 2/11; a -> b 2/3, null 1/3; b -> c 2/3, conv 1/3;
# c -> conv 2/7, null 5/7. P(conv) = 4/11 (252/693); without a 120/693, without b 54/693,
# without c 126/693: removal effects 11/21, 11/14, 1/2 (132 : 198 : 126 of 252).
PATHS = [
    ChannelPath(("a", "b", "c"), 1, 1, 10.0),
    ChannelPath(("a", "a", "b"), 2, 0, 30.0),
    ChannelPath(("c",), 0, 3),
    ChannelPath(("b", "c"), 1, 1, 5.0),
    ChannelPath(("a",), 0, 2),
]


def by_channel(fit, attribute):
    return {credit.channel: getattr(credit, attribute) for credit in fit.credits}


def test_states_of_order_k_are_sliding_windows_without_repeats():
    path = ("a", "a", "b", "a", "a", "a")
    assert markov_states(path, 1) == [("a",), ("b",), ("a",)]
    assert markov_states(path, 2) == [("a", "a"), ("a", "b"), ("b", "a"), ("a", "a")]
    assert markov_states(path, 3) == [
        ("a", "a", "b"),
        ("a", "b", "a"),
        ("b", "a", "a"),
        ("a", "a", "a"),
    ]
    assert markov_states(("x", "y"), 3) == [("x", "y")]  # shorter than the order
    assert markov_states(("x", "y", "z"), 3) == [("x", "y", "z")]


def test_order_one_removal_effects_and_credit_match_the_hand_computation():
    fit = fit_markov(PATHS, order=1)
    assert fit.conversion_probability == pytest.approx(4 / 11, abs=1e-12)
    effects = by_channel(fit, "removal_effect")
    assert effects == pytest.approx({"a": 11 / 21, "b": 11 / 14, "c": 1 / 2}, abs=1e-12)
    expected = {"a": F(132, 456), "b": F(198, 456), "c": F(126, 456)}
    assert by_channel(fit, "weight") == pytest.approx({k: float(v) for k, v in expected.items()})
    assert by_channel(fit, "conversions") == pytest.approx(
        {k: float(4 * v) for k, v in expected.items()}
    )
    assert sum(by_channel(fit, "conversions").values()) == pytest.approx(4)
    assert fit.converged
    assert fit.state_count == 3


def test_value_removal_effects_use_the_mean_value_after_each_state():
    # Conversions after c are worth 15 in total (2 conversions), after b 30 (2): expected
    # value 45/11; without a 135/77, without b 45/77, without c 30/11.
    fit = fit_markov(PATHS, order=1)
    assert by_channel(fit, "value_removal_effect") == pytest.approx(
        {"a": 4 / 7, "b": 6 / 7, "c": 1 / 3}, abs=1e-12
    )
    assert by_channel(fit, "value") == pytest.approx(
        {"a": 45 * 12 / 37, "b": 45 * 18 / 37, "c": 45 * 7 / 37}
    )


def test_order_two_matches_the_hand_computation():
    # States: a a, a b, b c, a, c. P(conv) = 4/11; without a 1/11, without b 0, without c 2/11.
    fit = fit_markov(PATHS, order=2)
    assert fit.conversion_probability == pytest.approx(4 / 11, abs=1e-12)
    assert by_channel(fit, "removal_effect") == pytest.approx(
        {"a": 3 / 4, "b": 1.0, "c": 1 / 2}, abs=1e-12
    )
    assert by_channel(fit, "conversions") == pytest.approx({"a": 4 / 3, "b": 16 / 9, "c": 8 / 9})
    assert fit.state_count == 5
    assert fit.order == 2


@pytest.mark.parametrize("dense_limit", [1_500, 0], ids=["lu", "gauss-seidel"])
def test_a_cycle_converges_to_the_exact_absorption_probabilities(dense_limit):
    # a -> b 1/2, conv 1/2; b -> a 1/2, null 1/2: P(conv from a) = 2/3, from b = 1/3.
    paths = [ChannelPath(("a", "b", "a"), 1, 0), ChannelPath(("b",), 0, 1)]
    fit = fit_markov(paths, dense_limit=dense_limit)
    assert fit.conversion_probability == pytest.approx(1 / 2, abs=1e-11)
    assert by_channel(fit, "removal_effect") == pytest.approx({"a": 1.0, "b": 0.5}, abs=1e-11)
    assert by_channel(fit, "conversions") == pytest.approx({"a": 2 / 3, "b": 1 / 3}, abs=1e-11)
    assert fit.converged
    assert (fit.sweeps == 0) == (dense_limit > 0)  # LU needs no sweeps


def test_an_iterative_solve_that_runs_out_of_sweeps_is_flagged():
    paths = [ChannelPath(("a", "b", "a"), 1, 0), ChannelPath(("b",), 0, 1)]
    assert not fit_markov(paths, max_sweeps=1, dense_limit=0).converged


def test_both_solvers_give_the_same_fit_at_order_two():
    paths = [
        ChannelPath(("a", "b", "c", "a", "b"), 3, 1, 30.0),
        ChannelPath(("b", "a", "c"), 0, 4),
        ChannelPath(("c", "c", "a"), 2, 2, 10.0),
        ChannelPath(("a",), 1, 1, 5.0),
    ]
    lu, iterated = fit_markov(paths, 2), fit_markov(paths, 2, dense_limit=0)
    assert lu.state_count == iterated.state_count
    for field in ("removal_effect", "conversions", "value_removal_effect", "value"):
        assert by_channel(lu, field) == pytest.approx(by_channel(iterated, field), abs=1e-9)


def test_counted_and_repeated_paths_and_their_order_give_the_same_fit():
    repeated = [
        ChannelPath(
            p.channels,
            1 if i < p.conversions else 0,
            0 if i < p.conversions else 1,
            p.value / p.conversions if i < p.conversions else 0.0,
        )
        for p in PATHS
        for i in range(p.conversions + p.non_conversions)
    ]
    first = fit_markov(PATHS)
    for paths in (repeated, list(reversed(repeated))):
        again = fit_markov(paths)
        assert by_channel(again, "conversions") == pytest.approx(by_channel(first, "conversions"))
        assert by_channel(again, "value") == pytest.approx(by_channel(first, "value"))


def test_empty_journeys_are_unattributed_and_not_in_the_fit():
    fit = fit_markov([*PATHS, ChannelPath((), 3, 5, 99.0)])
    assert fit.stats.unattributed_conversions == 3
    assert fit.stats.attributed_conversions == 4
    assert fit.stats.journey_count == 11 + 8
    assert fit.stats.converting_journey_count == 4 + 3
    assert fit.stats.channel_count == 3
    assert sum(by_channel(fit, "conversions").values()) == pytest.approx(4)
    assert sum(by_channel(fit, "value").values()) == pytest.approx(45)


def test_without_conversions_every_weight_is_zero():
    fit = fit_markov([ChannelPath(("a", "b"), 0, 4), ChannelPath(("b",), 0, 1)])
    assert by_channel(fit, "weight") == {"a": 0.0, "b": 0.0}
    assert fit.conversion_probability == 0.0
    assert fit.weights() == {"a": 0.0, "b": 0.0}


def test_a_channel_only_on_failing_paths_gets_no_credit():
    fit = fit_markov([ChannelPath(("a",), 2, 1), ChannelPath(("z",), 0, 5)])
    assert by_channel(fit, "conversions") == pytest.approx({"a": 2.0, "z": 0.0})


def test_order_and_counts_are_validated():
    with pytest.raises(InvalidInput) as caught:
        fit_markov(PATHS, order=5)
    assert caught.value.violations[0].field == "options.markov_order"
    with pytest.raises(InvalidInput) as caught:
        fit_markov([ChannelPath(("a",), -1, 0)])
    assert caught.value.violations[0].field == "paths[0].conversions"
    with pytest.raises(InvalidInput) as caught:
        fit_markov([ChannelPath(("a",), 1, 0), ChannelPath(("a",), 1, 0, float("nan"))])
    assert caught.value.violations[0].field == "paths[1].value"
