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
absorbing chain directly, by Gauss-Seidel iteration over the sparse transition graph (pure
Python, no numpy). States are swept in depth-first post-order from (start), so a state is
updated after the states it leads to; each removal solve starts from the full chain's
solution. Iteration stops when a sweep changes no state's absorption probability (nor its
expected value, in units of the mean conversion value) by more than `tolerance` (1e-12).
A chain that has not converged after `max_sweeps` sweeps is returned flagged
(converged=False) rather than failing the fitting job.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import mul

from leadflow_attribution.domain.channel_paths import ChannelPath, PathStats, total_paths
from leadflow_attribution.domain.errors import InvalidInput
from leadflow_attribution.domain.models import MAX_MARKOV_ORDER

DEFAULT_TOLERANCE = 1e-12
DEFAULT_MAX_SWEEPS = 10_000  # per solve

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
    state_channels: list[frozenset[str]]


def _build_chain(totals: dict[State, list[float]], order: int) -> _Chain:
    ids: dict[str | State, int] = {}  # a channel (order 1) or a window of channels
    pairs: dict[tuple[int, int], float] = {}
    start: dict[int, float] = {}
    ends: dict[int, list[float]] = {}  # state -> [conversions, non-conversions, value]
    total_value = total_conversions = 0.0
    for channels, (conversions, failures, value) in totals.items():
        journeys = conversions + failures
        if not journeys:
            continue
        total_value += value
        total_conversions += conversions
        previous = -1
        last: str | State | None = None
        visits: Iterable[str | State] = channels if order == 1 else _windows(channels, order)
        for state in visits:
            if state == last:
                continue  # a repeated state: no self-loops, as ChannelAttribution
            last = state
            index = ids.get(state)
            if index is None:
                index = ids[state] = len(ids)
            if previous < 0:
                start[index] = start.get(index, 0.0) + journeys
            else:
                key = (previous, index)
                pairs[key] = pairs.get(key, 0.0) + journeys
            previous = index
        end = ends.get(previous)
        if end is None:
            ends[previous] = [conversions, failures, value]
        else:
            end[0] += conversions
            end[1] += failures
            end[2] += value
    count = len(ids)
    out_total = [0.0] * count
    for (source, _), journeys in pairs.items():
        out_total[source] += journeys
    converted = [0.0] * count
    reward = [0.0] * count
    mean_value = total_value / total_conversions if total_value > 0 else 1.0
    for index, (conversions, failures, value) in ends.items():
        out_total[index] += conversions + failures
        converted[index] = conversions
        reward[index] = value
    edges: list[list[tuple[int, float]]] = [[] for _ in range(count)]
    for (source, target), journeys in pairs.items():
        edges[source].append((target, journeys / out_total[source]))
    targets = [tuple(target for target, _ in row) for row in edges]
    starts = sum(start.values())
    return _Chain(
        start=[(state, journeys / starts) for state, journeys in start.items()],
        targets=targets,
        weights=[tuple(weight for _, weight in row) for row in edges],
        conversion=[c / t for c, t in zip(converted, out_total, strict=True)],
        reward=[v / t / mean_value for v, t in zip(reward, out_total, strict=True)],
        sweep_order=_successors_first(start, targets),
        state_channels=[frozenset((state,) if isinstance(state, str) else state) for state in ids],
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
) -> MarkovFit:
    """Removal-effect credit per channel over converting and non-converting paths.

    Conversions of empty paths are not in the fit (stats.unattributed_conversions); credit
    sums to stats.attributed_conversions (and value to stats.attributed_value). A fit that
    hits `max_sweeps` first is returned with converged=False.
    """
    if not 1 <= order <= MAX_MARKOV_ORDER:
        raise InvalidInput.of(
            "options.markov_order", "OUT_OF_RANGE", f"must be between 1 and {MAX_MARKOV_ORDER}"
        )
    if not tolerance > 0 or max_sweeps < 1:
        raise ValueError("tolerance must be > 0 and max_sweeps >= 1")
    totals, stats = total_paths(paths)
    chain = _build_chain(totals, order)
    channels = sorted({c for state in chain.state_channels for c in state})
    with_value = stats.attributed_value > 0
    full, full_value, sweeps, converged, solution = _solve(
        chain, None, with_value, tolerance, max_sweeps
    )
    effects: list[float] = []
    value_effects: list[float] = []
    for channel in channels:
        removed = [channel in members for members in chain.state_channels]
        without, without_value, used, ok, _ = _solve(
            chain, removed, with_value, tolerance, max_sweeps, solution
        )
        sweeps += used
        converged = converged and ok
        effects.append(_effect(full, without))
        value_effects.append(_effect(full_value, without_value))
    weights = _normalise(effects)
    value_weights = _normalise(value_effects)
    credits = tuple(
        MarkovChannelCredit(
            channel=channel,
            removal_effect=effect,
            weight=weight,
            conversions=weight * stats.attributed_conversions,
            value_removal_effect=value_effect,
            value_weight=value_weight,
            value=value_weight * stats.attributed_value,
        )
        for channel, effect, weight, value_effect, value_weight in zip(
            channels, effects, weights, value_effects, value_weights, strict=True
        )
    )
    return MarkovFit(
        order=order,
        credits=credits,
        conversion_probability=full,
        stats=stats,
        state_count=len(chain.targets),
        sweeps=sweeps,
        converged=converged,
        tolerance=tolerance,
    )
