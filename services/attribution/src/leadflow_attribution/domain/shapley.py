"""Shapley value over channels (DESIGN.md §3 data-driven; proto AttributionModel.SHAPLEY).

The game is the unordered ("simplified") Shapley game of attribution: players are channels,
and the value of a coalition S is the conversions (or value) of the journeys whose set of
channels is a subset of S. Order and repetition inside a journey play no part.

That game is a sum of unanimity games, one per journey (its conversions x "all of my
channels are present"), so its Shapley value is exactly each journey's conversions split
evenly over its distinct channels (Zhao et al., 2018, "Shapley value methods for attribution
modeling in online advertising"). `fit_shapley` computes that closed form: exact for any
number of channels, in one pass over the paths.

`shapley_values` is the general computation for any coalition function: exact enumeration
of the 2^n coalitions up to `exact_limit` (12) players, Monte Carlo permutation sampling
beyond, with a seeded generator and standard errors. The tests use it (with `subset_game`)
to check the closed form against the definition.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from leadflow_attribution.domain.channel_paths import (
    ChannelPath,
    PathColumns,
    PathStats,
    column_stats,
    path_columns,
    total_paths,
)

EXACT_LIMIT = 12
DEFAULT_SAMPLES = 2_000
DEFAULT_CONFIDENCE = 0.95

CoalitionValue = Callable[[int], float]


@dataclass(frozen=True, slots=True)
class ShapleyEstimate:
    """Shapley value per player; `standard_errors` are 0 when exact."""

    values: tuple[float, ...]
    standard_errors: tuple[float, ...]
    exact: bool
    sample_count: int

    def error_bound(self, total: float, confidence: float = DEFAULT_CONFIDENCE) -> float:
        """Bound on the absolute error of any player's share value/total, at `confidence`.

        Normal approximation with a Bonferroni correction over the players, so it holds for
        all of them at once; 0 when exact.
        """
        if self.exact or not self.values or total == 0:
            return 0.0
        tail = (1.0 - confidence) / (2 * len(self.values))
        z = NormalDist().inv_cdf(1.0 - tail)
        return z * max(self.standard_errors) / abs(total)


def shapley_values(
    player_count: int,
    coalition_value: CoalitionValue,
    *,
    exact_limit: int = EXACT_LIMIT,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
) -> ShapleyEstimate:
    """Shapley values of a game whose coalitions are bit masks over `player_count` players.

    Exact (all 2^n coalitions) when player_count <= exact_limit; otherwise the mean marginal
    contribution over `samples` random permutations drawn from random.Random(seed). Sampled
    values still sum exactly (up to float addition) to v(all) - v(none): every permutation's
    marginal contributions do.
    """
    if player_count < 0 or samples < 2:
        raise ValueError("player_count must be >= 0 and samples >= 2")
    if player_count <= exact_limit:
        return _exact(player_count, coalition_value)
    return _sampled(player_count, coalition_value, samples, seed)


def _exact(n: int, coalition_value: CoalitionValue) -> ShapleyEstimate:
    values = [coalition_value(mask) for mask in range(1 << n)]
    size_weight = [
        math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)
    ]
    phi = [0.0] * n
    for mask, value in enumerate(values):
        weight = size_weight[mask.bit_count()] if mask.bit_count() < n else 0.0
        for player in range(n):
            bit = 1 << player
            if not mask & bit:
                phi[player] += weight * (values[mask | bit] - value)
    return ShapleyEstimate(tuple(phi), (0.0,) * n, exact=True, sample_count=0)


def _sampled(n: int, coalition_value: CoalitionValue, samples: int, seed: int) -> ShapleyEstimate:
    rng = random.Random(seed)
    players = list(range(n))
    total = [0.0] * n
    squares = [0.0] * n
    empty = coalition_value(0)
    for _ in range(samples):
        rng.shuffle(players)
        mask, before = 0, empty
        for player in players:
            mask |= 1 << player
            after = coalition_value(mask)
            gain = after - before
            total[player] += gain
            squares[player] += gain * gain
            before = after
    means = [t / samples for t in total]
    errors = [
        math.sqrt(max(0.0, (sq / samples - m * m) * samples / (samples - 1)) / samples)
        for sq, m in zip(squares, means, strict=True)
    ]
    return ShapleyEstimate(tuple(means), tuple(errors), exact=False, sample_count=samples)


def subset_game(
    paths: Iterable[ChannelPath], use_value: bool = False
) -> tuple[tuple[str, ...], CoalitionValue]:
    """Channels (sorted; bit i is channels[i]) and v(S) = conversions (or value) of the
    journeys whose channel set is a subset of S."""
    totals, _ = total_paths(paths)
    channels = tuple(sorted({c for key in totals for c in key}))
    bit = {channel: 1 << i for i, channel in enumerate(channels)}
    worth: dict[int, float] = {}
    for key, (conversions, _failures, value) in totals.items():
        mask = 0
        for channel in key:
            mask |= bit[channel]
        worth[mask] = worth.get(mask, 0.0) + (value if use_value else conversions)
    memo: dict[int, float] = {}

    def coalition_value(coalition: int) -> float:
        known = memo.get(coalition)
        if known is None:
            known = memo[coalition] = math.fsum(
                w for mask, w in worth.items() if mask & ~coalition == 0
            )
        return known

    return channels, coalition_value


@dataclass(frozen=True, slots=True)
class ShapleyChannelCredit:
    """One channel's Shapley credit; `weight` sums to 1 over channels (0 without conversions)."""

    channel: str
    weight: float
    conversions: float
    value_weight: float
    value: float


@dataclass(frozen=True, slots=True)
class ShapleyFit:
    """Per-channel credit (sorted by channel) and how it was computed (proto DataDrivenFit)."""

    credits: tuple[ShapleyChannelCredit, ...]
    stats: PathStats
    exact: bool
    sample_count: int
    error_bound: float
    error_confidence: float

    def weights(self) -> dict[str, float]:
        """Channel -> weight, for shares_from_channel_weights."""
        return {credit.channel: credit.weight for credit in self.credits}


def fit_shapley(paths: Iterable[ChannelPath]) -> ShapleyFit:
    """fit_shapley_columns over ChannelPath objects (identical paths may repeat)."""
    return fit_shapley_columns(path_columns(paths))


def fit_shapley_columns(paths: PathColumns) -> ShapleyFit:
    """Shapley credit of the subset game in closed form (exact for any channel count).

    Conversions of empty paths are in no coalition's value (stats.unattributed_conversions);
    credit sums to stats.attributed_conversions and value credit to stats.attributed_value.
    """
    stats = column_stats(paths)
    names = paths.channel_names
    credits: list[ShapleyChannelCredit] = []
    for code, by_size, value in sorted(_channel_sums(paths), key=lambda h: names[h[0]]):
        # {distinct channels in the journey: conversions}, summed as fractions: exact
        exact = sum((Fraction(int(c), s) for s, c in enumerate(by_size) if c), Fraction())
        credits.append(
            ShapleyChannelCredit(
                channel=names[code],
                weight=_ratio(float(exact), stats.attributed_conversions),
                conversions=float(exact),
                value_weight=_ratio(value, stats.attributed_value),
                value=value,
            )
        )
    return ShapleyFit(
        credits=tuple(credits),
        stats=stats,
        exact=True,
        sample_count=0,
        error_bound=0.0,
        error_confidence=0.0,
    )


_MASK_TABLE_CHANNELS = 16  # up to 2^16 channel sets: sum per set, then per channel


def _channel_sums(paths: PathColumns) -> Iterator[tuple[int, list[float], float]]:
    """Per channel present in a non-empty path: its code, the conversions of the paths
    holding it by their number of distinct channels, and sum(value / that number)."""
    nonempty = np.flatnonzero(paths.lengths > 0)
    if not nonempty.size:
        return
    width = len(paths.channel_names)
    conversions = paths.conversions[nonempty].astype(np.float64)
    values = paths.values[nonempty]
    if width > 62:
        yield from _channel_sums_by_pairs(paths, nonempty)
        return
    # a bit per channel: each path's channel set as an int64 mask (empty paths own no
    # rows, so each non-empty path's segment ends where the next one begins)
    masks = np.bitwise_or.reduceat(
        np.left_shift(np.int64(1), paths.channels), paths.offsets[:-1][nonempty]
    )
    sizes = np.bitwise_count(masks).astype(np.int64)
    everything = int(np.bitwise_or.reduce(masks))
    paying = np.flatnonzero(values != 0)
    paying_masks, paying_shares = masks[paying], values[paying] / sizes[paying]
    if width <= _MASK_TABLE_CHANNELS:
        sets = np.arange(1 << width, dtype=np.int64)
        per_set = np.bincount(masks, weights=conversions, minlength=sets.shape[0])
        set_sizes = np.bitwise_count(sets).astype(np.int64)
    for code in range(width):
        if not everything >> code & 1:
            continue
        if width <= _MASK_TABLE_CHANNELS:
            held = (sets >> code) & 1 == 1
            by_size = np.bincount(set_sizes[held], weights=per_set[held])
        else:
            held = (masks >> code) & 1 == 1
            by_size = np.bincount(sizes[held], weights=conversions[held])
        mine = paying_shares[(paying_masks >> code) & 1 == 1]
        yield code, by_size.tolist(), math.fsum(mine.tolist())


def _channel_sums_by_pairs(
    paths: PathColumns, nonempty: npt.NDArray[np.int64]
) -> Iterator[tuple[int, list[float], float]]:
    """_channel_sums for many channels: each (path, channel) pair once, by sorting."""
    width = len(paths.channel_names)
    owner = np.repeat(np.arange(paths.lengths.shape[0], dtype=np.int64), paths.lengths)
    pairs = np.unique(owner * width + paths.channels)
    owners, codes = pairs // width, pairs % width
    sizes = np.bincount(owners, minlength=paths.lengths.shape[0])[owners]
    order = np.argsort(codes, kind="stable")
    edges = np.searchsorted(codes[order], np.arange(width + 1))
    for code in range(width):
        mine = order[edges[code] : edges[code + 1]]
        if not mine.size:
            continue
        holders = owners[mine]
        by_size = np.bincount(sizes[mine], weights=paths.conversions[holders].astype(np.float64))
        shares = paths.values[holders] / sizes[mine]
        yield code, by_size.tolist(), math.fsum(shares[shares != 0].tolist())


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0
