"""Retention tables (PostHog semantics), vectorised: cohorts by the period of the cohort
event (first ever, or every period it happens in), the share of each cohort doing the
returning event in each later period, conversions per cohort, first-time versus recurring
subjects per calendar period. Pure functions; times are microseconds since the epoch."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from leadflow_reporting.domain.funnel import I64
from leadflow_reporting.domain.keys import distinct
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


def next_period_day(day: date, period: Period) -> date:
    """The first day of the period after the one starting on `day`."""
    if period is Period.DAY:
        return day + timedelta(days=1)
    if period is Period.WEEK:
        return day + timedelta(days=7)
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def period_day(day: date, period: Period) -> date:
    """The first day of the day's period (ISO weeks start on Monday)."""
    if period is Period.WEEK:
        return day - timedelta(days=day.weekday())
    if period is Period.MONTH:
        return day.replace(day=1)
    return day


def boundaries(start_us: int, end_us: int, extra: int, period: Period, zone: ZoneInfo) -> I64:
    """Starts of the periods that start in [start, end) (the cohorts), then `extra` more
    period starts after them (the later periods and the end of the last one)."""
    local = (_EPOCH + timedelta(microseconds=start_us)).astimezone(zone).date()
    day = period_day(local, period)
    out: list[int] = []
    cohorts = 0
    while True:
        t = _us(datetime.combine(day, time(0), tzinfo=zone))
        if t >= end_us and t >= start_us:
            break
        if t >= start_us:
            out.append(t)
            cohorts += 1
        day = next_period_day(day, period)
    for _ in range(extra):
        out.append(_us(datetime.combine(day, time(0), tzinfo=zone)))
        day = next_period_day(day, period)
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
class Valued:
    """Conversions with a value, as columns; currency: an index into `currencies`."""

    subject: I64
    time_us: I64
    units: I64
    nanos: I64
    currency: I64
    currencies: tuple[str, ...]

    @staticmethod
    def none() -> Valued:
        empty = np.zeros(0, dtype=np.int64)
        return Valued(empty, empty, empty, empty, empty, ())


def _member(sorted_keys: I64, keys: I64) -> npt.NDArray[np.bool_]:
    """Which keys are in sorted_keys (sorted, unique)."""
    if not len(sorted_keys):
        return np.zeros(len(keys), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[pos] == keys


def _firsts(subject: I64, time_us: I64) -> tuple[I64, I64]:
    """(subjects, their earliest time), subjects ascending."""
    if not len(subject):
        return subject, time_us
    lo, hi = int(subject.min()), int(subject.max())
    if hi - lo < 4 * len(subject) + 1024:  # dense ids: no sort needed
        first = np.full(hi - lo + 1, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, subject - lo, time_us)
        found = np.flatnonzero(first != np.iinfo(np.int64).max)
        return found + lo, first[found]
    subjects, inverse = np.unique(subject, return_inverse=True)
    first = np.full(len(subjects), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, inverse.reshape(-1), time_us)
    return subjects, first


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
    valued: Valued | None = None,
) -> RetentionTable:
    """The table from every fetched event (all history of the cohort event, returning and
    conversion events up to now). bounds: cohort starts, then later period starts (at least
    cohort_count + periods + 1). Subjects and periods are keyed together as
    subject * len(bounds) + period."""
    span = len(bounds)
    index = np.searchsorted(bounds, time_us, side="right") - 1
    index = np.where(time_us < now_us, index, -2)
    is_cohort = (flags & COHORT) > 0
    # Each subject's first cohort event (all history): its period, -1 when before the range.
    first_subject, first_time = _firsts(subject[is_cohort], time_us[is_cohort])
    first_period = np.searchsorted(bounds, first_time, side="right") - 1
    first_period = np.where(first_time < now_us, first_period, -2)
    if recurring:
        m = is_cohort & (index >= 0) & (index < cohort_count)
        members = distinct(subject[m] * span + index[m])
    else:
        inside = (first_period >= 0) & (first_period < cohort_count)
        members = first_subject[inside] * span + first_period[inside]
    m_cohort = members % span
    ret = ((flags & RETURNING) > 0) & (index >= 0)
    returned = distinct(subject[ret] * span + index[ret])
    sizes = np.bincount(m_cohort, minlength=cohort_count)
    active = np.zeros((cohort_count, periods + 1), dtype=np.int64)
    for k in range(periods + 1):
        active[:, k] = np.bincount(m_cohort[_member(returned, members + k)], minlength=cohort_count)
    if not recurring:
        active[:, 0] = sizes
    # Conversions from the cohort start to the end of the last period shown.
    conv = ((flags & CONVERSION) > 0) & (index >= 0)
    converted_pairs = distinct(subject[conv] * span + index[conv])
    converted = np.zeros(len(members), dtype=bool)
    for k in range(periods + 1):
        converted |= _member(converted_pairs, members + k)
    converted_count = np.bincount(m_cohort[converted], minlength=cohort_count)
    revenue = _revenue(valued or Valued.none(), members, bounds, cohort_count, periods, now_us)
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
                revenue[c],
            )
        )
    average: list[float] = []
    for k in range(periods + 1):
        done = [c for c in range(cohort_count) if bounds[c + k + 1] <= now_us]
        total = sum(int(sizes[c]) for c in done)
        average.append(sum(int(active[c, k]) for c in done) / total if total else 0.0)
    # First-time versus recurring: by the period of the subject's first cohort event.
    returned_subject, returned_period = returned // span, returned % span
    never = cohort_count + periods + 2  # subjects without a cohort event: neither kind
    pos = np.minimum(
        np.searchsorted(first_subject, returned_subject), max(len(first_subject) - 1, 0)
    )
    known = (
        first_subject[pos] == returned_subject if len(first_subject) else np.zeros(0, dtype=bool)
    )
    firsts = np.where(known, first_period[pos] if len(first_subject) else never, never)
    firsts = np.where(firsts == -2, never, firsts)
    activity: list[Activity] = []
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


def _revenue(
    v: Valued, members: I64, bounds: I64, cohort_count: int, periods: int, now_us: int
) -> list[dict[str, Decimal]]:
    """Per cohort, the value of its members' conversions in its periods, per currency."""
    units = np.zeros((cohort_count, len(v.currencies)), dtype=np.int64)
    nanos = np.zeros((cohort_count, len(v.currencies)), dtype=np.int64)
    keep = v.time_us < now_us
    period = np.searchsorted(bounds, v.time_us[keep], side="right") - 1
    subject, cur = v.subject[keep], v.currency[keep]
    u, n = v.units[keep], v.nanos[keep]
    for k in range(periods + 1):
        cohort = period - k
        ok = (cohort >= 0) & (cohort < cohort_count)
        ok[ok] = _member(members, subject[ok] * len(bounds) + cohort[ok])
        np.add.at(units, (cohort[ok], cur[ok]), u[ok])
        np.add.at(nanos, (cohort[ok], cur[ok]), n[ok])
    out: list[dict[str, Decimal]] = []
    for c in range(cohort_count):
        row = {
            currency: Decimal(int(units[c, j])) + Decimal(int(nanos[c, j])) / 1_000_000_000
            for j, currency in enumerate(v.currencies)
            if units[c, j] or nanos[c, j]
        }
        out.append(dict(sorted(row.items())))
    return out
