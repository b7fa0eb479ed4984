from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

import pytest

from leadflow_attribution.domain.channel_paths import ChannelPath
from leadflow_attribution.domain.shapley import fit_shapley, shapley_values, subset_game


def brute_force(paths: list[ChannelPath], use_value: bool = False) -> dict[str, float]:
    """The definition: mean marginal contribution over every ordering of the channels, where
    v(S) = conversions (or value) of journeys whose channel set is a subset of S."""
    channels = sorted({c for p in paths for c in p.channels})

    def v(coalition: set[str]) -> float:
        return sum(
            (p.value if use_value else p.conversions)
            for p in paths
            if p.channels and set(p.channels) <= coalition
        )

    totals = dict.fromkeys(channels, 0.0)
    orderings = list(itertools.permutations(channels))
    for ordering in orderings:
        present: set[str] = set()
        for channel in ordering:
            before = v(present)
            present.add(channel)
            totals[channel] += v(present) - before
    return {c: t / len(orderings) for c, t in totals.items()}


def credits(fit, attribute="conversions") -> dict[str, float]:
    return {c.channel: getattr(c, attribute) for c in fit.credits}


def random_paths(seed: int, channel_count: int, count: int = 60) -> list[ChannelPath]:
    rng = random.Random(seed)
    names = [f"ch{i}" for i in range(channel_count)]
    paths = []
    for _ in range(count):
        channels = tuple(rng.choices(names, k=rng.randint(1, 4)))
        converted = rng.random() < 0.4
        value = float(rng.randint(1, 500)) if converted else 0.0
        paths.append(ChannelPath(channels, int(converted), int(not converted), value))
    return paths


def test_hand_computed_fixture():
    paths = [
        ChannelPath(("a",), 2, 1, 20.0),
        ChannelPath(("a", "a", "b"), 1, 0, 30.0),  # order and repeats play no part
        ChannelPath(("c", "b"), 3, 2, 60.0),
        ChannelPath(("d",), 0, 4),
    ]
    fit = fit_shapley(paths)
    # a: 2 + 1/2; b: 1/2 + 3/2; c: 3/2; d: only on failing journeys.
    assert credits(fit) == {"a": 2.5, "b": 2.0, "c": 1.5, "d": 0.0}
    assert credits(fit, "value") == {"a": 35.0, "b": 45.0, "c": 30.0, "d": 0.0}
    assert credits(fit, "weight") == {"a": 2.5 / 6, "b": 2 / 6, "c": 1.5 / 6, "d": 0.0}
    assert fit.exact and fit.sample_count == 0 and fit.error_bound == 0.0
    assert fit.stats.channel_count == 4
    assert fit.weights()["b"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(("channel_count", "seed"), [(3, 1), (4, 2), (5, 3)])
def test_closed_form_and_enumeration_agree_with_brute_force(channel_count, seed):
    paths = random_paths(seed, channel_count)
    expected = brute_force(paths)
    assert credits(fit_shapley(paths)) == pytest.approx(expected, abs=1e-12)
    channels, game = subset_game(paths)
    estimate = shapley_values(len(channels), game)
    assert estimate.exact
    assert dict(zip(channels, estimate.values, strict=True)) == pytest.approx(expected, abs=1e-12)
    expected_value = brute_force(paths, use_value=True)
    assert credits(fit_shapley(paths), "value") == pytest.approx(expected_value, abs=1e-9)


def test_efficiency_credit_sums_to_the_attributed_conversions_and_value():
    paths = [*random_paths(11, 8, count=400), ChannelPath((), 5, 1, 70.0)]
    fit = fit_shapley(paths)
    assert fit.stats.unattributed_conversions == 5
    assert sum(credits(fit).values()) == pytest.approx(fit.stats.attributed_conversions, abs=1e-9)
    assert sum(credits(fit, "value").values()) == pytest.approx(fit.stats.attributed_value)
    assert sum(credits(fit, "weight").values()) == pytest.approx(1.0)


def test_symmetry_channels_that_always_appear_together_share_equally():
    paths = [
        ChannelPath(("a", "b"), 3, 1),
        ChannelPath(("b", "c", "a"), 2, 0),
        ChannelPath(("c",), 1, 2),
    ]
    fit = credits(fit_shapley(paths))
    assert fit["a"] == fit["b"]
    channels, game = subset_game(paths)
    values = shapley_values(len(channels), game).values
    assert values[0] == pytest.approx(values[1])


def test_null_player_gets_nothing():
    # z adds nothing to any coalition's conversions: it only appears on failing journeys.
    paths = [
        ChannelPath(("a", "b"), 2, 0),
        ChannelPath(("z", "a"), 0, 3),
        ChannelPath(("z",), 0, 1),
    ]
    assert credits(fit_shapley(paths))["z"] == 0.0
    channels, game = subset_game(paths)
    assert shapley_values(len(channels), game).values[channels.index("z")] == 0.0


def test_general_enumeration_on_a_non_additive_game():
    # Glove game: player 0 holds a left glove, 1 and 2 right gloves; a pair is worth 1.
    def glove(mask: int) -> float:
        return float(min(mask & 1, ((mask >> 1) & 1) + ((mask >> 2) & 1)))

    estimate = shapley_values(3, glove)
    assert estimate.values == pytest.approx((2 / 3, 1 / 6, 1 / 6))
    assert estimate.standard_errors == (0.0, 0.0, 0.0)
    assert estimate.error_bound(1.0) == 0.0


def test_beyond_the_exact_limit_permutations_are_sampled_with_a_stated_error():
    # A majority game on 14 players: every player's Shapley value is 1/14 by symmetry.
    def majority(mask: int) -> float:
        return 1.0 if mask.bit_count() >= 8 else 0.0

    estimate = shapley_values(14, majority, samples=4_000, seed=5)
    assert not estimate.exact
    assert estimate.sample_count == 4_000
    assert math.fsum(estimate.values) == pytest.approx(1.0)  # efficiency holds per sample
    bound = estimate.error_bound(1.0, confidence=0.95)
    assert 0 < bound < 0.03
    for value in estimate.values:
        assert abs(value - 1 / 14) <= bound
    assert shapley_values(14, majority, samples=4_000, seed=5) == estimate  # seeded
    assert shapley_values(14, majority, samples=4_000, seed=6) != estimate


def test_sampled_subset_game_agrees_with_the_closed_form_within_its_bound():
    paths = random_paths(21, 14, count=300)
    channels, game = subset_game(paths)
    assert len(channels) == 14
    estimate = shapley_values(len(channels), game, samples=3_000, seed=1)
    total = math.fsum(estimate.values)
    bound = estimate.error_bound(total)
    exact = credits(fit_shapley(paths), "weight")
    assert total == pytest.approx(fit_shapley(paths).stats.attributed_conversions)
    for channel, value in zip(channels, estimate.values, strict=True):
        assert abs(value / total - exact[channel]) <= bound


def test_exact_limit_is_twelve_players():
    assert shapley_values(12, lambda mask: float(mask.bit_count())).exact
    assert not shapley_values(13, lambda mask: float(mask.bit_count()), samples=10).exact


@pytest.mark.parametrize("channel_count", [20, 70])
def test_closed_form_with_many_channels_splits_each_journey_evenly(channel_count):
    rng = random.Random(channel_count)
    names = [f"ch{i:02d}" for i in range(channel_count)]
    paths = [
        ChannelPath(tuple(rng.choices(names, k=rng.randint(0, 6))), rng.randint(0, 3),
                    rng.randint(0, 2), rng.choice([0.0, 10.0, 99.5]))
        for _ in range(300)
    ]  # fmt: skip
    fit = fit_shapley(paths)
    want: dict[str, Fraction] = {}
    values: dict[str, list[float]] = {}
    for path in paths:
        distinct = set(path.channels)
        for channel in distinct:
            want[channel] = want.get(channel, Fraction()) + Fraction(
                path.conversions, len(distinct)
            )
            values.setdefault(channel, []).append(path.value / len(distinct))
    assert [c.channel for c in fit.credits] == sorted(want)
    for credit in fit.credits:
        assert credit.conversions == float(want[credit.channel])
        assert credit.value == math.fsum(values[credit.channel])
