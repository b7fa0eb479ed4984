"""What a funnel answer says about a set of entered subjects: per step counts, conversion
rates, drop-offs and times; the breakdown series; the subjects who dropped at a step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from leadflow_reporting.domain.funnel import I64, Entries

DEFAULT_BREAKDOWN_LIMIT = 25
MAX_BREAKDOWN_LIMIT = 100


@dataclass(frozen=True)
class StepStats:
    count: int
    conversion_from_first: float
    conversion_from_previous: float
    dropped_from_previous: int
    # Microseconds; None for step 0 or when nobody reached the step.
    median_from_previous_us: float | None
    average_from_previous_us: float | None


@dataclass(frozen=True)
class SeriesStats:
    steps: tuple[StepStats, ...]
    median_to_convert_us: float | None


def series(entries: Entries, members: I64 | None = None) -> SeriesStats:
    """Step figures over the entries `members` (indices into entries; None: all)."""
    steps = entries.step_time.shape[1]
    reached = entries.reached if members is None else entries.reached[members]
    times = entries.step_time if members is None else entries.step_time[members]
    counts = [int((reached > k).sum()) for k in range(steps)]
    out: list[StepStats] = []
    for k in range(steps):
        if k == 0:
            first = 1.0 if counts[0] else 0.0
            out.append(StepStats(counts[0], first, 1.0, 0, None, None))
            continue
        got = reached > k
        gaps = times[got, k] - times[got, k - 1]
        out.append(
            StepStats(
                counts[k],
                counts[k] / counts[0] if counts[0] else 0.0,
                counts[k] / counts[k - 1] if counts[k - 1] else 0.0,
                counts[k - 1] - counts[k],
                float(np.median(gaps)) if len(gaps) else None,
                float(gaps.mean()) if len(gaps) else None,
            )
        )
    done = reached == steps
    totals = times[done, steps - 1] - times[done, 0]
    return SeriesStats(tuple(out), float(np.median(totals)) if len(totals) else None)


@dataclass(frozen=True)
class Group:
    """One breakdown series: its value ("" when not set; the merged rest when other)."""

    value: str
    other: bool
    members: I64


def groups(values: Sequence[str], limit: int) -> list[Group]:
    """Entries grouped by breakdown value, most entries (step-1 subjects) first, then by
    value; values beyond `limit` merged into one `other` group, last."""
    if not values:
        return []
    uniques, inverse, counts = np.unique(
        np.asarray(values, dtype=object), return_inverse=True, return_counts=True
    )
    ranked = sorted(range(len(uniques)), key=lambda i: (-int(counts[i]), str(uniques[i])))
    order = np.argsort(inverse, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(inverse, minlength=len(uniques)))))
    members = [order[bounds[i] : bounds[i + 1]].astype(np.int64) for i in range(len(uniques))]
    out = [Group(str(uniques[i]), False, members[i]) for i in ranked[:limit]]
    rest = ranked[limit:]
    if rest:
        merged = np.sort(np.concatenate([members[i] for i in rest]))
        out.append(Group("", True, merged))
    return out


def attribution_rows(entries: Entries, attribution: str, step: int = 0) -> I64:
    """Per entry, the row (index into the funnel's input rows) whose event gives the
    breakdown value: the step-1 event (first), the last step reached (last), or the
    given step's event when reached, else the step-1 event (specific)."""
    if attribution == "last":
        return entries.step_row[np.arange(len(entries)), entries.reached - 1]
    if attribution == "specific":
        chosen = entries.step_row[:, step]
        return np.where(chosen >= 0, chosen, entries.step_row[:, 0])
    return entries.step_row[:, 0]


def dropped(entries: Entries, step_index: int, members: I64 | None = None) -> tuple[I64, I64]:
    """Entries (indices) that reached step_index - 1 but not step_index, with the time of
    their last step, by that time."""
    idx = np.arange(len(entries)) if members is None else members
    hit = idx[entries.reached[idx] == step_index]
    when = entries.step_time[hit, step_index - 1]
    order = np.argsort(when, kind="stable")
    return hit[order], when[order]
