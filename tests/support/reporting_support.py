"""Reporting tests' independent computations and harness.

`reference_funnel` answers a funnel straight from the proto's words, event by event in
plain Python (no numpy, no shared code with the service), so the service's vectorised
engine can be checked against it.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

EXCLUSION_BIT = 16


@dataclass(frozen=True)
class RefEvent:
    subject: int
    time: int
    steps: frozenset[int]  # step indices the event matches
    exclusions: frozenset[int] = frozenset()  # exclusion indices it matches
    row: int = 0  # position in the input (ties are taken in input order)


@dataclass
class RefEntry:
    subject: int
    reached: int
    times: list[int]  # one per reached step
    rows: list[int]


@dataclass
class RefFunnel:
    entries: dict[int, RefEntry] = field(default_factory=dict)
    excluded: set[int] = field(default_factory=set)

    def counts(self, steps: int, subjects: Iterable[int] | None = None) -> list[int]:
        chosen = self.entries.values() if subjects is None else [self.entries[s] for s in subjects]
        return [sum(1 for e in chosen if e.reached > k) for k in range(steps)]

    def gaps(self, k: int, subjects: Iterable[int] | None = None) -> list[int]:
        keys = self.entries if subjects is None else subjects
        return [
            self.entries[s].times[k] - self.entries[s].times[k - 1]
            for s in keys
            if self.entries[s].reached > k
        ]

    def median_gap(self, k: int) -> float | None:
        gaps = self.gaps(k)
        return statistics.median(gaps) if gaps else None


def _sequential_path(rows: list[RefEvent], start: int, steps: int, window: int) -> list[int]:
    path = [start]
    t0 = rows[start].time
    for k in range(1, steps):
        prev = rows[path[-1]].time
        nxt = next(
            (
                i
                for i, e in enumerate(rows)
                if e.time > prev and k in e.steps and e.time - t0 <= window
            ),
            None,
        )
        if nxt is None:
            break
        path.append(nxt)
    return path


def _strict_path(rows: list[RefEvent], start: int, steps: int, window: int) -> list[int]:
    path = [start]
    t0 = rows[start].time
    for k in range(1, steps):
        prev = rows[path[-1]].time
        later = [e.time for e in rows if e.time > prev]
        if not later:
            break
        t_next = min(later)
        nxt = next(
            (i for i, e in enumerate(rows) if e.time == t_next and k in e.steps),
            None,
        )
        if nxt is None or t_next - t0 > window:
            break
        path.append(nxt)
    return path


def _any_path(rows: list[RefEvent], start: int, steps: int, window: int) -> list[int]:
    t0 = rows[start].time
    firsts: list[tuple[int, int, int]] = []
    for k in range(steps):
        hit = next(
            (i for i, e in enumerate(rows) if t0 <= e.time <= t0 + window and k in e.steps),
            None,
        )
        if hit is not None:
            firsts.append((rows[hit].time, k, hit))
    return [i for _, _, i in sorted(firsts)]


def reference_funnel(
    events: Sequence[RefEvent],
    *,
    steps: int,
    window: int,
    order: str = "sequential",
    exclusions: Sequence[tuple[int, int, int]] = (),  # (index, from_step, to_step)
) -> RefFunnel:
    by_subject: dict[int, list[RefEvent]] = defaultdict(list)
    for e in events:
        by_subject[e.subject].append(e)
    out = RefFunnel()
    for subject, rows in by_subject.items():
        rows.sort(key=lambda e: (e.time, e.row))
        best: list[int] | None = None
        for start, e in enumerate(rows):
            if order == "any":
                if not e.steps:
                    continue
                path = _any_path(rows, start, steps, window)
            else:
                if 0 not in e.steps:
                    continue
                walk = _strict_path if order == "strict" else _sequential_path
                path = walk(rows, start, steps, window)
            if best is None or len(path) > len(best):
                best = path
        if best is None:
            continue
        t0 = rows[best[0]].time
        excluded = False
        for index, from_step, to_step in exclusions:
            if len(best) <= from_step:
                continue
            lo = rows[best[from_step]].time
            for x in rows:
                if index not in x.exclusions or x.time <= lo:
                    continue
                if len(best) > to_step:
                    if x.time < rows[best[to_step]].time:
                        excluded = True
                elif x.time - t0 <= window:
                    excluded = True
        if excluded:
            out.excluded.add(subject)
            continue
        out.entries[subject] = RefEntry(
            subject, len(best), [rows[i].time for i in best], [rows[i].row for i in best]
        )
    return out
