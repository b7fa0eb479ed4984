"""Markov chain removal effect (DESIGN.md §3 data-driven; proto AttributionModel.MARKOV).

The chain follows ChannelAttribution (Altomare & Loris), so the two agree on the same data:

* States of order k are windows of k consecutive channels of a path, sliding by one
  (a path shorter than k is one state of all its channels); a state equal to the one
  before it is dropped (self-loops do not change absorption probabilities).
* Each path adds (start) -> s1 -> ... -> sm, then sm -> (conversion) once per conversion
  and sm -> (null) once per non-conversion; every transition is weighted by the path's
  journey count. Transition probabilities are the row-normalised counts.
* Removing a channel removes every state containing it (its inflow goes to (null)). Its
  removal effect is 1 - P(conversion without it) / P(conversion); the effects, normalised
  to sum to 1, are the channel weights, and weight x conversions is the channel's credit.
* With values, each state's conversions carry the mean value of the conversions observed
  after it; the value removal effect is computed the same way on expected value.

ChannelAttribution estimates these quantities by simulating paths; this module solves the
absorbing chain directly. Transitions are counted over path columns with numpy. A chain of
up to `dense_limit` (1,500) transient states is solved exactly, (I - Q) x = b by LU, once
for the full chain and once per channel removed. A larger chain is solved by Gauss-Seidel
iteration over the sparse transition graph: states are swept in depth-first post-order
from (start), so a state is updated after the states it leads to; each removal solve
starts from the full chain's solution; iteration stops when a sweep changes no state's
absorption probability (nor its expected value, in units of the mean conversion value) by
more than `tolerance` (1e-12). A chain that has not converged after `max_sweeps` sweeps is
returned flagged (converged=False) rather than failing the fitting job.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import mul
from typing import Any

import numpy as np
import numpy.typing as npt

from leadflow_attribution.domain.channel_paths import (
    ChannelPath,
    PathColumns,
    PathStats,
    column_stats,
    path_columns,
)
from leadflow_attribution.domain.errors import InvalidInput
from leadflow_attribution.domain.models import MAX_MARKOV_ORDER

DEFAULT_TOLERANCE = 1e-12
DEFAULT_MAX_SWEEPS = 10_000  # per solve
DENSE_LIMIT = 1_500  # transient states solved by LU; more by Gauss-Seidel
Floats = npt.NDArray[np.float64]
Array = npt.NDArray[Any]  # numpy's stubs type bincount and friends loosely

State = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MarkovChannelCredit:
    """One channel's result. `weight` sums to 1 over channels (all 0 without conversions)."""

    channel: str
    removal_effect: float  # 1 - P(conversion without the channel) / P(conversion)
    weight: float  # normalised removal effect
    conversions: float  # weight x attributed conversions
    value_removal_effect: float  # the same on expected value (0 without values)
    value_weight: float
    value: float  # value_weight x attributed value


@dataclass(frozen=True, slots=True)
class MarkovFit:
    """A fitted chain: per-channel credit (sorted by channel) and how it was computed."""

    order: int
    credits: tuple[MarkovChannelCredit, ...]
    conversion_probability: float  # from (start), with every channel present
    stats: PathStats
    state_count: int  # transient states of the chain
    sweeps: int  # Gauss-Seidel sweeps over all solves (full chain, then one per channel)
    converged: bool
    tolerance: float

    def weights(self) -> dict[str, float]:
        """Channel -> weight, for shares_from_channel_weights."""
        return {credit.channel: credit.weight for credit in self.credits}


def markov_states(channels: Sequence[str], order: int) -> list[State]:
    """The chain states a path of `channels` visits under ChannelAttribution's order k."""
    states: list[State] = []
    for window in _windows(channels, order):
        if not states or window != states[-1]:
            states.append(window)
    return states


def _windows(channels: Sequence[str], order: int) -> Iterable[State]:
    if len(channels) <= order:
        return (tuple(channels),)
    return zip(*(channels[i:] for i in range(order)), strict=False)


@dataclass(slots=True)
class _Chain:
    start: list[tuple[int, float]]  # (state, probability) out of (start)
    targets: list[tuple[int, ...]]  # state -> next transient states
    weights: list[tuple[float, ...]]  # state -> their transition probabilities
    conversion: list[float]  # state -> probability of (conversion) next
    reward: list[float]  # state -> expected value booked next, in mean-value units
    sweep_order: list[int]


@dataclass(frozen=True, eq=False)
class _Counts:
    """The chain counted over path columns: weights of (start) -> state, state -> state
    (src, dst, weight, aggregated), and per state its ends (conversions, non-conversions,
    value); `members[s, c]` says state s contains channel code c."""

    state_count: int
    start: Array
    src: Array
    dst: Array
    weight: Array
    conversions: Array
    failures: Array
    values: Array
    members: Array


def _count_order_one(paths: PathColumns) -> _Counts:
    """_count_chain for order 1, without dropping repeats: a repeated channel is a
    self-loop, which is removed from the pair table afterwards."""
    lengths = paths.lengths
    journeys = paths.conversions + paths.non_conversions
    used = (journeys > 0) & (lengths > 0)
    codes = paths.channels
    width = max(len(paths.channel_names), 1)
    first, last = paths.offsets[:-1][used], paths.offsets[1:][used] - 1
    pairs = codes[:-1] * width + codes[1:]
    boundaries = paths.offsets[1:-1] - 1
    boundaries = boundaries[(boundaries >= 0) & (boundaries < pairs.shape[0])]
    pairs[boundaries] = width * width  # across two paths: a discarded bin
    if (journeys[lengths > 0] == 1).all():  # one journey per path: count rows
        table = np.bincount(pairs, minlength=width * width + 1)
    else:
        owner = np.repeat(np.arange(lengths.shape[0], dtype=np.int64), lengths)
        table = np.bincount(pairs, weights=journeys[owner[:-1]], minlength=width * width + 1)
    moves = table[: width * width].reshape(width, width).astype(np.float64)
    np.fill_diagonal(moves, 0.0)
    present = np.zeros(width, dtype=bool)
    present[codes[np.repeat(used, lengths)]] = True
    states = np.flatnonzero(present)
    moves = moves[np.ix_(states, states)]
    count = states.shape[0]
    index = np.cumsum(present) - 1
    starts, ends = index[codes[first]], index[codes[last]]
    weight = journeys[used].astype(np.float64)
    pair = np.flatnonzero(moves.reshape(-1))
    members = np.zeros((count, width), dtype=bool)
    members[np.arange(count), states] = True
    return _Counts(
        state_count=count,
        start=np.bincount(starts, weights=weight, minlength=count),
        src=pair // max(count, 1),
        dst=pair % max(count, 1),
        weight=moves.reshape(-1)[pair],
        conversions=np.bincount(ends, weights=paths.conversions[used], minlength=count),
        failures=np.bincount(ends, weights=paths.non_conversions[used], minlength=count),
        values=np.bincount(ends, weights=paths.values[used], minlength=count),
        members=members,
    )


def _count_chain(paths: PathColumns, order: int) -> _Counts:
    if order == 1 and len(paths.channel_names) <= 2_000:
        return _count_order_one(paths)
    lengths = paths.lengths
    journeys = paths.conversions + paths.non_conversions
    owner = np.repeat(np.arange(lengths.shape[0], dtype=np.int64), lengths)
    codes = paths.channels
    if not (journeys > 0).all():  # paths no journey took are not in the chain
        kept = (journeys > 0)[owner]
        codes, owner = codes[kept], owner[kept]
    channel_count = len(paths.channel_names)
    if order > 1:
        starts_of = np.searchsorted(owner, owner, side="left")
        n = np.bincount(owner, minlength=lengths.shape[0])[owner]
        position = np.arange(codes.shape[0], dtype=np.int64) - starts_of
        width = np.minimum(n, order)
        valid = position <= n - width
        starts = np.flatnonzero(valid)
        windows = np.full((starts.shape[0], order), -1, dtype=np.int64)
        for j in range(order):
            take = j < width[starts]
            windows[take, j] = codes[starts[take] + j]
        owner = owner[starts]
    fresh = np.ones(owner.shape[0], dtype=bool)
    if order == 1:
        fresh[1:] = (owner[1:] != owner[:-1]) | (codes[1:] != codes[:-1])
        codes, owner = codes[fresh], owner[fresh]
        present = np.zeros(channel_count, dtype=bool)
        present[codes] = True
        state_windows = np.flatnonzero(present)[:, None]
        state = (np.cumsum(present) - 1)[codes]
    else:
        fresh[1:] = (owner[1:] != owner[:-1]) | (windows[1:] != windows[:-1]).any(axis=1)
        windows, owner = windows[fresh], owner[fresh]
        state_windows, state = np.unique(windows, axis=0, return_inverse=True)
        state = state.reshape(-1)
    count = int(state_windows.shape[0])
    weight = journeys.astype(np.float64)
    first = np.flatnonzero(np.diff(owner, prepend=-1))
    last = np.append(first[1:] - 1, owner.shape[0] - 1) if first.size else first
    same = owner[1:] == owner[:-1]
    src, dst = state[:-1][same], state[1:][same]
    moved = weight[owner[:-1][same]]
    if count * count <= 4_000_000:  # small chains: count every pair in a dense table
        table = np.bincount(src * count + dst, weights=moved, minlength=count * count)
        pair = np.flatnonzero(table)
        pair_weight = table[pair]
    else:
        pair, inverse = np.unique(src * count + dst, return_inverse=True)
        pair_weight = np.bincount(inverse.reshape(-1), weights=moved, minlength=pair.shape[0])
    ends = state[last]
    ending = owner[last]
    members = np.zeros((count, max(channel_count, 1)), dtype=bool)
    for j in range(state_windows.shape[1]):
        column = state_windows[:, j]
        known = column >= 0
        members[np.flatnonzero(known), column[known]] = True
    return _Counts(
        state_count=count,
        start=np.bincount(state[first], weights=weight[owner[first]], minlength=count),
        src=pair // max(count, 1),
        dst=pair % max(count, 1),
        weight=pair_weight,
        conversions=np.bincount(ends, weights=paths.conversions[ending], minlength=count),
        failures=np.bincount(ends, weights=paths.non_conversions[ending], minlength=count),
        values=np.bincount(ends, weights=paths.values[ending], minlength=count),
        members=members,
    )


def _chain_of(counts: _Counts, mean_value: float) -> _Chain:
    """The sparse chain Gauss-Seidel iterates on."""
    out_total = (
        np.bincount(counts.src, weights=counts.weight, minlength=counts.state_count)
        + counts.conversions
        + counts.failures
    )
    probability = counts.weight / out_total[counts.src]
    targets: list[list[int]] = [[] for _ in range(counts.state_count)]
    weights: list[list[float]] = [[] for _ in range(counts.state_count)]
    for source, target, p in zip(
        counts.src.tolist(), counts.dst.tolist(), probability.tolist(), strict=True
    ):
        targets[source].append(target)
        weights[source].append(p)
    start_states = np.flatnonzero(counts.start).tolist()
    total_start = float(counts.start.sum())
    frozen = [tuple(t) for t in targets]
    return _Chain(
        start=[(s, float(counts.start[s]) / total_start) for s in start_states],
        targets=frozen,
        weights=[tuple(w) for w in weights],
        conversion=(counts.conversions / out_total).tolist(),
        reward=(counts.values / out_total / mean_value).tolist(),
        sweep_order=_successors_first(start_states, frozen),
    )


def _successors_first(start: Iterable[int], targets: list[tuple[int, ...]]) -> list[int]:
    """States in depth-first post-order from (start): each state after the states it leads
    to (except around cycles), so Gauss-Seidel solves a chain without cycles in one sweep."""
    done = [False] * len(targets)
    order: list[int] = []
    for root in start:
        if done[root]:
            continue
        done[root] = True
        stack = [(root, iter(targets[root]))]
        while stack:
            state, following = stack[-1]
            for target in following:
                if not done[target]:
                    done[target] = True
                    stack.append((target, iter(targets[target])))
                    break
            else:
                stack.pop()
                order.append(state)
    return order


def _solve(
    chain: _Chain,
    removed: Sequence[bool] | None,
    with_value: bool,
    tolerance: float,
    max_sweeps: int,
    start_from: tuple[list[float], list[float]] | None = None,
) -> tuple[float, float, int, bool, tuple[list[float], list[float]]]:
    """P(conversion) and expected value (mean-value units) from (start), sweeps, whether it
    converged, and the per-state solution.

    Removing states only lowers every absorption probability, so a removal solve starts
    from the full chain's solution (removed states at 0) and converges from above.
    """
    count = len(chain.targets)
    if start_from is None:
        probability, value = [0.0] * count, [0.0] * count
    else:
        probability, value = list(start_from[0]), list(start_from[1])
    order = chain.sweep_order
    if removed is not None:
        order = [s for s in order if not removed[s]]
        for state in range(count):
            if removed[state]:
                probability[state] = value[state] = 0.0
    rows = [
        (s, chain.targets[s], chain.weights[s], chain.conversion[s], chain.reward[s]) for s in order
    ]
    at_probability, at_value = probability.__getitem__, value.__getitem__
    sweeps, converged = 0, False
    while sweeps < max_sweeps:
        sweeps += 1
        change = 0.0
        for state, targets, weights, conversion, reward in rows:
            total = conversion + sum(map(mul, weights, map(at_probability, targets)))
            step = abs(total - probability[state])
            if step > change:
                change = step
            probability[state] = total
            if with_value:
                expected = reward + sum(map(mul, weights, map(at_value, targets)))
                step = abs(expected - value[state])
                if step > change:
                    change = step
                value[state] = expected
        if change <= tolerance:
            converged = True
            break
    p_conversion = sum(p * probability[s] for s, p in chain.start)
    expected_value = sum(p * value[s] for s, p in chain.start)
    return p_conversion, expected_value, sweeps, converged, (probability, value)


def _effect(full: float, without: float) -> float:
    return max(0.0, 1.0 - without / full) if full > 0 else 0.0


def _normalise(effects: Sequence[float]) -> list[float]:
    total = sum(effects)
    return [e / total for e in effects] if total > 0 else [0.0] * len(effects)


def fit_markov(
    paths: Iterable[ChannelPath],
    order: int = 1,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    max_sweeps: int = DEFAULT_MAX_SWEEPS,
    dense_limit: int = DENSE_LIMIT,
) -> MarkovFit:
    """fit_markov_columns over ChannelPath objects (identical paths may repeat)."""
    return fit_markov_columns(
        path_columns(paths),
        order,
        tolerance=tolerance,
        max_sweeps=max_sweeps,
        dense_limit=dense_limit,
    )


def fit_markov_columns(
    paths: PathColumns,
    order: int = 1,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    max_sweeps: int = DEFAULT_MAX_SWEEPS,
    dense_limit: int = DENSE_LIMIT,
) -> MarkovFit:
    """Removal-effect credit per channel over converting and non-converting paths.

    Conversions of empty paths are not in the fit (stats.unattributed_conversions); credit
    sums to stats.attributed_conversions (and value to stats.attributed_value). A chain
    solved iteratively that hits `max_sweeps` first is returned with converged=False.
    """
    if not 1 <= order <= MAX_MARKOV_ORDER:
        raise InvalidInput.of(
            "options.markov_order", "OUT_OF_RANGE", f"must be between 1 and {MAX_MARKOV_ORDER}"
        )
    if not tolerance > 0 or max_sweeps < 1:
        raise ValueError("tolerance must be > 0 and max_sweeps >= 1")
    stats = column_stats(paths)
    counts = _count_chain(paths, order)
    in_states = np.flatnonzero(counts.members.any(axis=0)).tolist()
    names = paths.channel_names
    codes = sorted(in_states, key=names.__getitem__)
    with_value = stats.attributed_value > 0
    total_value = float(counts.values.sum())
    total_conversions = float(counts.conversions.sum())
    mean_value = total_value / total_conversions if total_value > 0 else 1.0
    if counts.state_count == 0:
        full = full_value = 0.0
        removals: list[tuple[float, float]] = [(0.0, 0.0) for _ in codes]
        sweeps, converged = 0, True
    elif counts.state_count <= dense_limit:
        (full, full_value), removals = _solve_dense(counts, codes, mean_value)
        sweeps, converged = 0, True
    else:
        chain = _chain_of(counts, mean_value)
        full, full_value, sweeps, converged, solution = _solve(
            chain, None, with_value, tolerance, max_sweeps
        )
        removals = []
        for code in codes:
            removed = counts.members[:, code].tolist()
            without, without_value, used, ok, _ = _solve(
                chain, removed, with_value, tolerance, max_sweeps, solution
            )
            sweeps += used
            converged = converged and ok
            removals.append((without, without_value))
    effects = [_effect(full, without) for without, _ in removals]
    value_effects = [_effect(full_value, without) for _, without in removals]
    if not with_value:
        value_effects = [0.0] * len(codes)
    weights = _normalise(effects)
    value_weights = _normalise(value_effects)
    credits = tuple(
        MarkovChannelCredit(
            channel=names[code],
            removal_effect=effect,
            weight=weight,
            conversions=weight * stats.attributed_conversions,
            value_removal_effect=value_effect,
            value_weight=value_weight,
            value=value_weight * stats.attributed_value,
        )
        for code, effect, weight, value_effect, value_weight in zip(
            codes, effects, weights, value_effects, value_weights, strict=True
        )
    )
    return MarkovFit(
        order=order,
        credits=credits,
        conversion_probability=full,
        stats=stats,
        state_count=counts.state_count,
        sweeps=sweeps,
        converged=converged,
        tolerance=tolerance,
    )


def _solve_dense(
    counts: _Counts, codes: Sequence[int], mean_value: float
) -> tuple[tuple[float, float], list[tuple[float, float]]]:
    """P(conversion) and expected value from (start), for the full chain and without each
    channel of `codes`, by LU on (I - Q)."""
    size = counts.state_count
    moves = np.bincount(counts.src * size + counts.dst, weights=counts.weight,
                        minlength=size * size).reshape(size, size)  # fmt: skip
    out_total = moves.sum(axis=1) + counts.conversions + counts.failures
    system = np.eye(size) - moves / out_total[:, None]
    targets = np.column_stack([counts.conversions / out_total,
                               counts.values / out_total / mean_value])  # fmt: skip
    start = counts.start / counts.start.sum()

    def absorbed(keep: npt.NDArray[np.bool_] | None) -> tuple[float, float]:
        if keep is None:
            solved = np.linalg.solve(system, targets)
            return float(start @ solved[:, 0]), float(start @ solved[:, 1])
        if not keep.any():
            return 0.0, 0.0
        solved = np.linalg.solve(system[np.ix_(keep, keep)], targets[keep])
        return float(start[keep] @ solved[:, 0]), float(start[keep] @ solved[:, 1])

    return absorbed(None), [absorbed(~counts.members[:, code]) for code in codes]
