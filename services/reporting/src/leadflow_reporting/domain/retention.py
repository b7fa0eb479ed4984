"""Retention tables (PostHog semantics), vectorised: cohorts by the period of the cohort
event (first ever, or every period it happens in), the share of each cohort doing the
returning event in each later period, conversions per cohort, first-time versus recurring
subjects per calendar period. Pure functions; times are microseconds since the epoch."""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np

from leadflow_reporting.domain.funnel import I64
from leadflow_reporting.domain.query import Selector

COHORT = 1
RETURNING = 2
CONVERSION = 4


class Period(enum.Enum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True)
class RetentionQuery:
    start_us: int
    end_us: int
    period: Period
    periods: int
    cohort_event: Selector | None
    returning_event: Selector | None
    conversion_event: Selector | None
    recurring: bool
    time_zone: str
    brand_ids: tuple[str, ...] = ()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(value: datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _next(day: date, period: Period) -> date:
    if period is Period.DAY:
        return day + timedelta(days=1)
    if period is Period.WEEK:
        return day + timedelta(days=7)
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def _period_of(day: date, period: Period) -> date:
    if period is Period.WEEK:
        return day - timedelta(days=day.weekday())
    if period is Period.MONTH:
        return day.replace(day=1)
    return day


def boundaries(start_us: int, end_us: int, extra: int, period: Period, zone: ZoneInfo) -> I64:
    """Starts of the periods that start in [start, end) (the cohorts), then `extra` more
    period starts after them (the later periods and the end of the last one)."""
    local = (_EPOCH + timedelta(microseconds=start_us)).astimezone(zone).date()
    day = _period_of(local, period)
    out: list[int] = []
    cohorts = 0
    while True:
        t = _us(datetime.combine(day, time(0), tzinfo=zone))
        if t >= end_us and t >= start_us:
            break
        if t >= start_us:
            out.append(t)
            cohorts += 1
        day = _next(day, period)
    for _ in range(extra):
        out.append(_us(datetime.combine(day, time(0), tzinfo=zone)))
        day = _next(day, period)
    return np.asarray(out, dtype=np.int64)


@dataclass(frozen=True)
class Cohort:
    start_us: int
    size: int
    active: list[int]  # periods 0..k, periods starting after now left out
    complete: list[bool]
    converted: int
    revenue: dict[str, Decimal]


@dataclass(frozen=True)
class Activity:
    start_us: int
    active: int
    first_time: int
    recurring: int


@dataclass(frozen=True)
class RetentionTable:
    cohorts: list[Cohort]
    average_share: list[float]
    activity: list[Activity]


@dataclass(frozen=True)
class Conversion:
    subject: int
    time_us: int
    currency: str
    value: Decimal


def _pairs(subject: I64, index: I64) -> I64:
    return np.unique(subject * (1 << 20) + index)


def table(
    subject: I64,
    time_us: I64,
    flags: I64,
    bounds: I64,
    cohort_count: int,
    periods: int,
    now_us: int,
    *,
    recurring: bool,
    valued: Sequence[Conversion] = (),
) -> RetentionTable:
    """The table from every fetched event (all history of the cohort event, returning and
    conversion events up to now). bounds: cohort starts, then later period starts (at least
    cohort_count + periods + 1)."""
    index = np.searchsorted(bounds, time_us, side="right") - 1
    index = np.where(time_us < now_us, index, -2)
    is_cohort = (flags & COHORT) > 0
    # Each subject's first cohort event (all history): its period, -1 when before the range.
    order = np.lexsort((time_us, subject))
    c_rows = order[is_cohort[order]]
    first_subject, first_at = np.unique(subject[c_rows], return_index=True)
    first_period = index[c_rows[first_at]]
    first_of = dict(zip(first_subject.tolist(), first_period.tolist(), strict=True))
    if recurring:
        m = is_cohort & (index >= 0) & (index < cohort_count)
        members = _pairs(subject[m], index[m])
    else:
        inside = (first_period >= 0) & (first_period < cohort_count)
        members = first_subject[inside] * (1 << 20) + first_period[inside]
    m_subject, m_cohort = members >> 20, members & ((1 << 20) - 1)
    ret = (flags & RETURNING) > 0
    returned = _pairs(subject[ret & (index >= 0)], index[ret & (index >= 0)])
    sizes = np.bincount(m_cohort, minlength=cohort_count)
    active = np.zeros((cohort_count, periods + 1), dtype=np.int64)
    for k in range(periods + 1):
        hit = np.isin(m_subject * (1 << 20) + m_cohort + k, returned)
        active[:, k] = np.bincount(m_cohort[hit], minlength=cohort_count)
    if not recurring:
        active[:, 0] = sizes
    # Conversions from the cohort start to the end of the last period shown.
    conv = (flags & CONVERSION) > 0
    converted_pairs = _pairs(subject[conv & (index >= 0)], index[conv & (index >= 0)])
    converted = np.zeros(len(members), dtype=bool)
    for k in range(periods + 1):
        converted |= np.isin(m_subject * (1 << 20) + m_cohort + k, converted_pairs)
    converted_count = np.bincount(m_cohort[converted], minlength=cohort_count)
    revenue: list[dict[str, Decimal]] = [defaultdict(Decimal) for _ in range(cohort_count)]
    cohorts_of: dict[int, list[int]] = defaultdict(list)
    for s, c in zip(m_subject.tolist(), m_cohort.tolist(), strict=True):
        cohorts_of[s].append(c)
    for v in valued:
        if v.time_us >= now_us or not v.currency:
            continue
        p = int(np.searchsorted(bounds, v.time_us, side="right")) - 1
        for c in cohorts_of.get(v.subject, ()):
            if c <= p <= c + periods:
                revenue[c][v.currency] += v.value
    cohorts: list[Cohort] = []
    for c in range(cohort_count):
        shown = [k for k in range(periods + 1) if bounds[c + k] <= now_us]
        cohorts.append(
            Cohort(
                int(bounds[c]),
                int(sizes[c]),
                [int(active[c, k]) for k in shown],
                [bool(bounds[c + k + 1] <= now_us) for k in shown],
                int(converted_count[c]),
                dict(sorted(revenue[c].items())),
            )
        )
    average: list[float] = []
    for k in range(periods + 1):
        done = [c for c in range(cohort_count) if bounds[c + k + 1] <= now_us]
        total = sum(int(sizes[c]) for c in done)
        average.append(sum(int(active[c, k]) for c in done) / total if total else 0.0)
    activity: list[Activity] = []
    returned_subject, returned_period = returned >> 20, returned & ((1 << 20) - 1)
    never = cohort_count + periods + 2  # subjects without a cohort event: neither kind
    firsts = np.asarray([first_of.get(s, never) for s in returned_subject.tolist()], dtype=np.int64)
    firsts = np.where(firsts == -2, never, firsts)
    for p in range(cohort_count):
        here = returned_period == p
        activity.append(
            Activity(
                int(bounds[p]),
                int(here.sum()),
                int((here & (firsts == p)).sum()),
                int((here & (firsts < p)).sum()),
            )
        )
    return RetentionTable(cohorts, average, activity)
