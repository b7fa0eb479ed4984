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
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from leadflow_reporting.domain.ordering import lex_order, sorted_order

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


@dataclass(frozen=True)
class _Keyed:
    """Rows keyed by (subject, time) as one integer: `key` orders them (equal keys: the same
    subject at the same time) and `key + 1` is the smallest key strictly later in time for
    the subject (or a later subject's, told apart by the subject). The key is
    (subject - s0) * span + (time - t0) when that fits (span > 0), else made of ranks."""

    key: I64
    subject: I64
    time: I64
    s0: int = 0
    t0: int = 0
    span: int = 0


def _keyed(rows: Rows) -> _Keyed:
    subject, time = rows.subject, rows.time
    s0, t0 = int(subject.min()), int(time.min())
    subjects, span = int(subject.max()) - s0 + 1, int(time.max()) - t0 + 1
    if subjects * span < 2**62:
        return _Keyed((subject - s0) * span + (time - t0), subject, time, s0, t0, span)
    # Too wide to pack: ranks of subjects and times keep the order and the ties.
    _, subject_rank = np.unique(subject, return_inverse=True)
    times, time_rank = np.unique(time, return_inverse=True)
    return _Keyed(subject_rank.reshape(-1) * len(times) + time_rank.reshape(-1), subject, time)


@dataclass(frozen=True)
class _Events:
    """Some rows (those of one step, say) sorted by key, ties in input order."""

    row: I64  # input row
    key: I64
    subject: I64
    time: I64

    def __len__(self) -> int:
        return len(self.row)


def _events(k: _Keyed, rows: I64) -> _Events:
    subject, time = k.subject[rows], k.time[rows]
    if len(rows) < 2 or bool((time[1:] >= time[:-1]).all()):
        # In time order already (one event type read from its index): by subject only.
        order, subject = sorted_order(subject)
        time = time[order]
    else:
        order = lex_order(subject, time)
        subject, time = subject[order], time[order]
    ordered = rows[order]
    key = (subject - k.s0) * k.span + (time - k.t0) if k.span else k.key[ordered]
    return _Events(ordered, key, subject, time)


def _next(events: _Events, key: I64, subject: I64, *, strictly: bool) -> tuple[I64, Bools]:
    """For each (key, subject): the index of the first of `events` at a key >= it (> it when
    `strictly`), and whether there is one of the same subject."""
    j = np.searchsorted(events.key, key + 1 if strictly else key, side="left")
    found = j < len(events)
    if not len(events):
        return np.zeros(len(key), dtype=np.int64), found
    j = np.minimum(j, len(events) - 1)
    return j, found & (events.subject[j] == subject)


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
    first = np.ones(len(candidates), dtype=np.bool_)
    first[1:] = segment[candidates[1:]] != segment[candidates[:-1]]
    return candidates[first]


def _follow(
    events: _Events, key: I64, subject: I64, everything: _Events | None
) -> tuple[I64, Bools]:
    """For each event (key, subject) the index of the one of `events` that can follow it
    and whether there is one: the first strictly later (SEQUENTIAL), or one at the
    subject's next point in time among `everything` (STRICT)."""
    if not len(events):
        return np.zeros(len(key), dtype=np.int64), np.zeros(len(key), dtype=np.bool_)
    if everything is None:
        return _next(events, key, subject, strictly=True)
    g, ok = _next(everything, key, subject, strictly=True)
    j, found = _next(events, everything.key[g], subject, strictly=False)
    return j, ok & found & (events.key[j] == everything.key[g])


def _ordered_paths(
    k: _Keyed, shape: FunnelShape, steps: list[_Events], rows: Rows
) -> tuple[I64, Callable[[I64], I64]]:
    """SEQUENTIAL and STRICT: the steps every attempt reaches (attempts: step-0 events by
    key), and a function giving the paths (input rows, -1 where not reached) of chosen
    attempts.

    Which event follows a step's event depends on that event alone, so the chain of later
    steps is followed once from each step-1 event; an attempt takes the chain of its next
    step-1 event as far as its window reaches (the chain's times rise)."""
    starts = steps[0]
    count = len(starts)
    limit = starts.time + shape.window_us
    reached = np.ones(count, dtype=np.int64)
    everything = _events(k, np.arange(len(rows))) if shape.order is Order.STRICT else None
    if shape.steps == 1 or not len(steps[1]):
        first = np.zeros(count, dtype=np.int64)
        return reached, lambda pick: _paths(
            shape, starts, steps, [], first[pick], reached[pick], pick
        )
    # chain[m - 1][e]: index into steps[m] of the step-m event that follows step-1 event e
    # (m >= 1), with whether there is one.
    one = steps[1]
    chain = [np.arange(len(one))]
    linked = [np.ones(len(one), dtype=np.bool_)]
    for m in range(2, shape.steps):
        if len(steps[m - 1]):
            at = steps[m - 1].key[chain[-1]]
            j, ok = _follow(steps[m], at, one.subject, everything)
        else:
            j, ok = np.zeros(len(one), dtype=np.int64), np.zeros(len(one), dtype=np.bool_)
        chain.append(j)
        linked.append(ok & linked[-1])
    first, ok = _follow(one, starts.key, starts.subject, everything)
    for m in range(1, shape.steps):
        if len(steps[m]):
            e = chain[m - 1][first]
            ok &= linked[m - 1][first] & (steps[m].time[e] <= limit)
        else:
            ok = np.zeros(count, dtype=np.bool_)
        reached += ok
    return reached, lambda pick: _paths(
        shape, starts, steps, chain, first[pick], reached[pick], pick
    )


def _paths(
    shape: FunnelShape,
    starts: _Events,
    steps: list[_Events],
    chain: list[I64],
    first: I64,
    reached: I64,
    pick: I64 | None = None,
) -> I64:
    path = np.full((len(first), shape.steps), -1, dtype=np.int64)
    path[:, 0] = starts.row if pick is None else starts.row[pick]
    for m in range(1, shape.steps):
        got = np.flatnonzero(reached > m)
        if not len(got):
            break
        path[got, m] = steps[m].row[chain[m - 1][first[got]]]
    return path


def _any_paths(rows: Rows, k: _Keyed, shape: FunnelShape) -> tuple[_Events, I64, I64]:
    """ANY: every attempt (any step event, by key). Returns (attempts, input rows per reached
    step in the order steps were reached (-1 beyond), steps reached).

    Each step's first event at or after an attempt (its time included) is found by a
    backward running minimum over the attempts themselves (every step event is one)."""
    step_bits = (1 << shape.steps) - 1
    anchors = _events(k, np.flatnonzero(rows.mask & step_bits))
    n = len(anchors)
    position = np.arange(n)
    new = np.ones(n, dtype=np.bool_)
    new[1:] = anchors.key[1:] != anchors.key[:-1]
    tie_start = np.maximum.accumulate(np.where(new, position, 0))
    limit = anchors.time + shape.window_us
    mask = rows.mask[anchors.row]
    big = np.iinfo(np.int64).max
    times = np.full((n, shape.steps), big, dtype=np.int64)
    where = np.full((n, shape.steps), -1, dtype=np.int64)
    for step in range(shape.steps):
        ahead = np.where((mask >> step) & 1, position, n)
        ahead = np.minimum.accumulate(ahead[::-1])[::-1][tie_start]
        ok = ahead < n
        ahead = np.minimum(ahead, n - 1)
        ok &= (anchors.subject[ahead] == anchors.subject) & (anchors.time[ahead] <= limit)
        times[ok, step] = anchors.time[ahead[ok]]
        where[ok, step] = anchors.row[ahead[ok]]
    reached = (where >= 0).sum(axis=1).astype(np.int64)
    order = np.argsort(times, axis=1, kind="stable")
    return anchors, np.take_along_axis(where, order, axis=1), reached


def enter(rows: Rows, shape: FunnelShape) -> Entries:
    """The attempt each subject enters the funnel with (see the module comment).

    Rows are keyed by (subject, time) as one integer; each step's events are sorted by key
    apart, and an event's next step is found by a binary search of the next step's keys."""
    if not 1 <= shape.steps <= MAX_STEPS:
        raise ValueError(f"a funnel has 1..{MAX_STEPS} steps")
    if len(rows) == 0:
        return _empty(shape.steps)
    k = _keyed(rows)
    if shape.order is Order.ANY:
        attempts, paths, reached = _any_paths(rows, k, shape)
        if len(attempts) == 0:
            return _empty(shape.steps)
        pick = _chosen(attempts.subject, reached)
        path = paths[pick]
    else:
        steps = [_events(k, np.flatnonzero((rows.mask >> s) & 1)) for s in range(shape.steps)]
        attempts = steps[0]
        if len(attempts) == 0:
            return _empty(shape.steps)
        reached, path_of = _ordered_paths(k, shape, steps, rows)
        pick = _chosen(attempts.subject, reached)
        path = path_of(pick)
    reached = reached[pick]
    step_time = np.where(path >= 0, rows.time[np.maximum(path, 0)], -1)
    excluded = _excluded(k, rows, shape, path, reached)
    keep = ~excluded
    return Entries(
        attempts.subject[pick][keep],
        reached[keep],
        path[keep],
        step_time[keep],
        int(excluded.sum()),
    )


def _excluded(k: _Keyed, rows: Rows, shape: FunnelShape, path: I64, reached: I64) -> Bools:
    out = np.zeros(len(reached), dtype=np.bool_)
    start_time = rows.time[path[:, 0]]
    for span in shape.exclusions:
        events = _events(k, np.flatnonzero((rows.mask >> (EXCLUSION_BIT + span.index)) & 1))
        if len(events) == 0:
            continue
        inside = np.flatnonzero(reached > span.from_step)
        after = path[inside, span.from_step]
        j, hit = _next(events, k.key[after], k.subject[after], strictly=True)
        to_reached = reached[inside] > span.to_step
        to_time = rows.time[np.maximum(path[inside, span.to_step], 0)]
        before_to = events.time[j] < to_time
        in_window = events.time[j] <= start_time[inside] + shape.window_us
        hit &= np.where(to_reached, before_to, in_window)
        out[inside[hit]] = True
    return out
