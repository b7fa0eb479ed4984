"""The funnel engine: which attempt each subject enters a funnel with, vectorised in numpy.

Input is one row per event (subject, time in microseconds, a bit mask of what the event
matches: bit k for step k, bit EXCLUSION_BIT + j for exclusion j). Only events inside the
funnel's range (and brand filter, not machine-made) are given; STRICT order also needs
every other event of the subjects (mask 0), since any event between two steps breaks it.

Semantics (FunnelDefinition in report_types.proto):
- an attempt starts at any step-0 event (ANY: any step event);
- SEQUENTIAL: step k+1 is the earliest step-(k+1) event strictly later than step k's event;
  greedy-earliest reaches the most steps for a fixed start, so it is the attempt's path;
- STRICT: step k+1 must happen at the subject's next point in time after step k's event
  (events tied with step k's event neither help nor break the chain);
- ANY: the attempt reaches as many steps as have an event in [start, start + window]; an
  event counts for every step it matches; the i-th step is reached when the i-th distinct
  step is first done;
- every step within `window` of the start (a step exactly at start + window is inside);
- a subject enters once, with the attempt that reaches most steps, the earliest on ties;
- an exclusion event strictly after the attempt's from_step event and strictly before its
  to_step event (until start + window, inclusive, when to_step was not reached) removes the
  subject from every step.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from leadflow_reporting.domain.ordering import lex_order

EXCLUSION_BIT = 16
MAX_STEPS = 10
MAX_EXCLUSIONS = 10

I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


class Order(enum.Enum):
    SEQUENTIAL = "sequential"
    STRICT = "strict"
    ANY = "any"


@dataclass(frozen=True)
class ExclusionSpan:
    """Exclusion j (its bit is EXCLUSION_BIT + j) between steps from_step and to_step."""

    index: int
    from_step: int
    to_step: int


@dataclass(frozen=True)
class FunnelShape:
    steps: int
    window_us: int
    order: Order = Order.SEQUENTIAL
    exclusions: tuple[ExclusionSpan, ...] = ()


@dataclass(frozen=True)
class Rows:
    subject: I64
    time: I64
    mask: I64

    @classmethod
    def of(cls, subject: object, time: object, mask: object) -> Rows:
        return cls(
            np.asarray(subject, dtype=np.int64),
            np.asarray(time, dtype=np.int64),
            np.asarray(mask, dtype=np.int64),
        )

    def __len__(self) -> int:
        return len(self.subject)


@dataclass(frozen=True)
class Entries:
    """The subjects who entered the funnel (not excluded), one row each, by subject id:
    steps reached (1..steps), and per step the row index (into the input Rows) and time
    of the event that completed it (-1 where not reached)."""

    subject: I64
    reached: I64
    step_row: I64
    step_time: I64
    excluded_subjects: int

    def __len__(self) -> int:
        return len(self.subject)


def _empty(steps: int, excluded: int = 0) -> Entries:
    z = np.zeros(0, dtype=np.int64)
    m = np.zeros((0, steps), dtype=np.int64)
    return Entries(z, z.copy(), m, m.copy(), excluded)


def _sort_order(subject: I64, time: I64) -> I64:
    """Row order by (subject, time), ties kept in input order."""
    return lex_order(subject, time)


@dataclass(frozen=True)
class _Sorted:
    subject: I64
    time: I64
    mask: I64
    tie_start: I64  # first position of the row's (subject, time) group
    tie_end: I64  # last position of that group
    group: I64  # group number of the row
    group_mask: I64  # OR of the masks of each group


def _sorted(rows: Rows, order: I64) -> _Sorted:
    subject, time, mask = rows.subject[order], rows.time[order], rows.mask[order]
    n = len(subject)
    new = np.ones(n, dtype=np.bool_)
    new[1:] = (subject[1:] != subject[:-1]) | (time[1:] != time[:-1])
    starts = np.flatnonzero(new)
    group = np.cumsum(new) - 1
    ends = np.append(starts[1:], n) - 1
    group_mask = np.bitwise_or.reduceat(mask, starts) if n else mask
    return _Sorted(subject, time, mask, starts[group], ends[group], group, group_mask)


def _first_at_or_after(positions: I64, at: I64) -> tuple[I64, Bools]:
    """For each value of `at`, the first element of sorted `positions` that is >= it."""
    j = np.searchsorted(positions, at, side="left")
    found = j < len(positions)
    if len(positions) == 0:
        return np.zeros(len(at), dtype=np.int64), found
    return positions[np.minimum(j, len(positions) - 1)], found


def _chosen(subject_of_attempt: I64, reached: I64) -> I64:
    """Per subject (attempts grouped by subject in time order) the index of the first
    attempt that reaches the most steps."""
    n = len(subject_of_attempt)
    new = np.ones(n, dtype=np.bool_)
    new[1:] = subject_of_attempt[1:] != subject_of_attempt[:-1]
    starts = np.flatnonzero(new)
    segment = np.cumsum(new) - 1
    best = np.maximum.reduceat(reached, starts)
    candidates = np.flatnonzero(reached == best[segment])
    _, first = np.unique(segment[candidates], return_index=True)
    return candidates[first]


def _ordered_paths(s: _Sorted, shape: FunnelShape, step_pos: list[I64]) -> tuple[I64, I64]:
    """SEQUENTIAL and STRICT: every attempt's path. Returns (positions (attempts x steps,
    -1 where not reached), steps reached)."""
    starts = step_pos[0]
    count = len(starts)
    path = np.full((count, shape.steps), -1, dtype=np.int64)
    path[:, 0] = starts
    reached = np.ones(count, dtype=np.int64)
    limit = s.time[starts] + shape.window_us
    active = np.arange(count)
    n = len(s.subject)
    for k in range(1, shape.steps):
        if len(active) == 0:
            break
        prev = path[active, k - 1]
        candidates = step_pos[k]
        if shape.order is Order.STRICT:
            after = s.tie_end[prev] + 1
            ok = after < n
            after = np.where(ok, after, 0)
            ok &= s.subject[after] == s.subject[prev]
            ok &= ((s.group_mask[s.group[after]] >> k) & 1).astype(np.bool_)
            nxt, found = _first_at_or_after(candidates, after)
            ok &= found
        else:
            nxt, found = _first_at_or_after(candidates, s.tie_end[prev] + 1)
            ok = found & (s.subject[nxt] == s.subject[prev])
        ok &= s.time[nxt] <= limit[active]
        active = active[ok]
        path[active, k] = nxt[ok]
        reached[active] += 1
    return path, reached


def _any_paths(s: _Sorted, shape: FunnelShape, step_pos: list[I64]) -> tuple[I64, I64, I64]:
    """ANY: every attempt (any step event). Returns (attempt positions, positions per
    reached step in the order steps were reached (-1 beyond), steps reached)."""
    step_bits = (1 << shape.steps) - 1
    anchors = np.flatnonzero(s.mask & step_bits)
    lower = s.tie_start[anchors]
    limit = s.time[anchors] + shape.window_us
    big = np.iinfo(np.int64).max
    times = np.full((len(anchors), shape.steps), big, dtype=np.int64)
    where = np.full((len(anchors), shape.steps), -1, dtype=np.int64)
    for k in range(shape.steps):
        pos, found = _first_at_or_after(step_pos[k], lower)
        ok = found & (s.subject[pos] == s.subject[anchors]) & (s.time[pos] <= limit)
        times[ok, k] = s.time[pos[ok]]
        where[ok, k] = pos[ok]
    reached = (where >= 0).sum(axis=1).astype(np.int64)
    order = np.argsort(times, axis=1, kind="stable")
    path = np.take_along_axis(where, order, axis=1)
    return anchors, path, reached


def enter(rows: Rows, shape: FunnelShape) -> Entries:
    """The attempt each subject enters the funnel with (see the module comment)."""
    if not 1 <= shape.steps <= MAX_STEPS:
        raise ValueError(f"a funnel has 1..{MAX_STEPS} steps")
    if len(rows) == 0:
        return _empty(shape.steps)
    order = _sort_order(rows.subject, rows.time)
    s = _sorted(rows, order)
    step_pos = [np.flatnonzero((s.mask >> k) & 1) for k in range(shape.steps)]
    if shape.order is Order.ANY:
        anchors, path, reached = _any_paths(s, shape, step_pos)
        if len(anchors) == 0:
            return _empty(shape.steps)
        pick = _chosen(s.subject[anchors], reached)
    else:
        if len(step_pos[0]) == 0:
            return _empty(shape.steps)
        path, reached = _ordered_paths(s, shape, step_pos)
        pick = _chosen(s.subject[step_pos[0]], reached)
    path, reached = path[pick], reached[pick]
    subject = s.subject[path[:, 0]]
    step_time = np.where(path >= 0, s.time[np.maximum(path, 0)], -1)
    excluded = _excluded(s, shape, path, reached)
    keep = ~excluded
    step_row = np.where(path >= 0, order[np.maximum(path, 0)], -1)
    return Entries(
        subject[keep],
        reached[keep],
        step_row[keep],
        step_time[keep],
        int(excluded.sum()),
    )


def _excluded(s: _Sorted, shape: FunnelShape, path: I64, reached: I64) -> Bools:
    out = np.zeros(len(reached), dtype=np.bool_)
    start_time = s.time[path[:, 0]]
    for span in shape.exclusions:
        events = np.flatnonzero((s.mask >> (EXCLUSION_BIT + span.index)) & 1)
        if len(events) == 0:
            continue
        inside = np.flatnonzero(reached > span.from_step)
        after = path[inside, span.from_step]
        pos, found = _first_at_or_after(events, s.tie_end[after] + 1)
        hit = found & (s.subject[pos] == s.subject[after])
        to_reached = reached[inside] > span.to_step
        to_pos = np.maximum(path[inside, span.to_step], 0)
        before_to = s.time[pos] < s.time[to_pos]
        in_window = s.time[pos] <= start_time[inside] + shape.window_us
        hit &= np.where(to_reached, before_to, in_window)
        out[inside[hit]] = True
    return out
