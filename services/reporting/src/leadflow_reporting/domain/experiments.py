"""A/B tests and the best hour to post: pure functions over fetched rows (times in
microseconds since the epoch)."""

from __future__ import annotations

import enum
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from leadflow_reporting.domain.stats import (
    ZTest,
    p_text,
    percent,
    rate,
    two_proportion_z,
    wilson_interval,
)


class NoWinner(enum.Enum):
    NONE = 0
    BELOW_MINIMUM_SAMPLE = 1
    NOT_SIGNIFICANT = 2
    TOO_FEW_VARIANTS = 3


@dataclass
class Variant:
    name: str
    control: bool
    participants: int
    conversions: int
    lower: float
    upper: float
    lift: float | None
    versus_control: ZTest | None
    meets_minimum: bool

    @property
    def rate(self) -> float:
        return rate(self.conversions, self.participants)


@dataclass
class AbAnswer:
    variants: list[Variant]
    winner: str
    no_winner: NoWinner
    test: ZTest | None
    excluded: int
    summary: str


def ab_test(
    exposures: Sequence[tuple[int, int, str]],  # (subject, time, variant)
    conversions: Sequence[tuple[int, int]],  # (subject, time)
    *,
    experiment: str,
    control: str,
    min_sample: int,
    confidence: float,
    window_us: int | None,
) -> AbAnswer:
    """A subject takes part with the variant of its first exposure (subjects exposed to
    several variants are left out) and converts with a conversion at or after that first
    exposure (within the window when one is set)."""
    seen: dict[int, set[str]] = defaultdict(set)
    first: dict[int, tuple[int, str]] = {}
    for subject, t, variant in exposures:
        seen[subject].add(variant)
        if subject not in first or t < first[subject][0]:
            first[subject] = (t, variant)
    excluded = {s for s, vs in seen.items() if len(vs) > 1}
    converted: set[int] = set()
    by_subject: dict[int, list[int]] = defaultdict(list)
    for subject, t in conversions:
        by_subject[subject].append(t)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for subject, (t0, variant) in first.items():
        if subject in excluded:
            continue
        counts[variant][0] += 1
        if any(t >= t0 and (window_us is None or t - t0 <= window_us) for t in by_subject[subject]):
            converted.add(subject)
            counts[variant][1] += 1
    alpha = 1.0 - confidence
    base = counts.get(control)
    variants: list[Variant] = []
    for name, (n, x) in counts.items():
        lower, upper = wilson_interval(x, n, confidence)
        is_control = name == control
        lift = versus = None
        if base is not None and not is_control:
            base_rate = rate(base[1], base[0])
            lift = (rate(x, n) - base_rate) / base_rate if base_rate else None
            versus = two_proportion_z(x, n, base[1], base[0], alpha)
        variants.append(
            Variant(name, is_control, n, x, lower, upper, lift, versus, n >= min_sample)
        )
    variants.sort(key=lambda v: (not v.control, -v.participants, v.name))
    answer = AbAnswer(variants, "", NoWinner.NONE, None, len(excluded), "")
    by_rate = sorted(variants, key=lambda v: (-v.rate, -v.participants, v.name))
    if len(by_rate) < 2:
        answer.no_winner = NoWinner.TOO_FEW_VARIANTS
        answer.summary = f"{experiment}: fewer than two variants have participants"
        return answer
    best, runner = by_rate[0], by_rate[1]
    test = two_proportion_z(
        best.conversions, best.participants, runner.conversions, runner.participants, alpha
    )
    answer.test = test
    compare = (
        f"Variant {best.name} converts at {percent(best.rate)} vs {percent(runner.rate)}"
        f" for {'control' if runner.control else 'variant ' + runner.name}"
        f" ({p_text(test.p_value)})"
    )
    level = percent(confidence)
    if not all(v.meets_minimum for v in variants):
        answer.no_winner = NoWinner.BELOW_MINIMUM_SAMPLE
        small = ", ".join(v.name for v in variants if not v.meets_minimum)
        answer.summary = (
            f"{compare}: no winner yet, below the minimum sample of {min_sample} per variant"
            f" ({small})"
        )
    elif not test.significant or best.rate <= runner.rate:
        answer.no_winner = NoWinner.NOT_SIGNIFICANT
        answer.summary = f"{compare}: not significant at {level} confidence"
    else:
        answer.winner = best.name
        answer.summary = f"{compare}: {best.name} wins at {level} confidence"
    return answer


@dataclass
class Hour:
    hour: int
    sample: int
    mean: float
    total: float
    eligible: bool


@dataclass
class HourSeries:
    value: str
    hours: list[Hour]
    best_hour: int | None
    reason: str
    posts: int


def local_hour(time_us: int, zone: ZoneInfo) -> int:
    return (
        (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=time_us)).astimezone(zone).hour
    )


def posting_hours(
    posts: Sequence[tuple[int, float]],  # (hour 0..23, engagement)
    min_sample: int,
    value: str = "",
) -> HourSeries:
    """Mean engagement per hour; the best hour is the eligible one (at least min_sample
    posts) with the highest mean, earliest on ties."""
    per: dict[int, list[float]] = defaultdict(list)
    for hour, engagement in posts:
        per[hour].append(engagement)
    hours = [
        Hour(
            h,
            len(per[h]),
            statistics.fmean(per[h]) if per[h] else 0.0,
            float(sum(per[h])),
            len(per[h]) >= min_sample,
        )
        for h in range(24)
    ]
    eligible = [h for h in hours if h.eligible and h.sample]
    best = max(eligible, key=lambda h: (h.mean, -h.hour), default=None)
    reason = "" if best else f"no hour has {min_sample} posts"
    return HourSeries(value, hours, best.hour if best else None, reason, len(posts))
