"""The real-time view's arithmetic: which buckets a window holds (aligned outwards; day
buckets to local midnight), which rollup level can serve them, and percentiles read from
log-scale latency histograms. Times are microseconds since the Unix epoch."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

MINUTE_US = 60_000_000
DAY_MINUTES = 1440
MAX_BUCKETS = 2000
# Rollup levels in minutes (see rollup_counts), coarsest first.
LEVELS = (60, 15, 5, 1)
# Latency histogram: bin i holds (GAMMA^(i-1), GAMMA^i] ms.
GAMMA = 1.02
NO_LATENCY_BIN = 32767


class TooManyBuckets(ValueError):
    pass


def default_bucket_minutes(length_us: int) -> int:
    """1 min up to 1 h, 5 min up to 6 h, 15 min up to 24 h, 1 h up to 7 d, else 1 day."""
    for limit_hours, minutes in ((1, 1), (6, 5), (24, 15), (7 * 24, 60)):
        if length_us <= limit_hours * 60 * MINUTE_US:
            return minutes
    return DAY_MINUTES


def valid_bucket_minutes(minutes: int) -> bool:
    return 1 <= minutes <= DAY_MINUTES and DAY_MINUTES % minutes == 0


@dataclass(frozen=True)
class Window:
    # Bucket starts, oldest first, then the end of the last bucket.
    boundaries: tuple[int, ...]
    bucket_minutes: int
    # The rollup level (minutes) whose buckets nest inside every bucket of the window.
    level: int

    @property
    def start_us(self) -> int:
        return self.boundaries[0]

    @property
    def end_us(self) -> int:
        return self.boundaries[-1]

    @property
    def starts(self) -> tuple[int, ...]:
        return self.boundaries[:-1]

    def bucket_of(self, t_us: int) -> int:
        """Index of the bucket holding t (the window must hold it)."""
        return bisect_right(self.boundaries, t_us) - 1


def _us(value: datetime) -> int:
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _local_midnights(start_us: int, end_us: int, zone: ZoneInfo) -> list[int]:
    """Local midnights from the one at or before start to the one at or after end."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    day = (epoch + timedelta(microseconds=start_us)).astimezone(zone).date()
    out: list[int] = []
    while True:
        t = _us(datetime.combine(day, time(0), tzinfo=zone))
        if t > start_us and not out:
            # Midnight of the start's local date lies after it (a gap at midnight): one back.
            day -= timedelta(days=1)
            continue
        out.append(t)
        if t >= end_us:
            return out
        day += timedelta(days=1)
        if len(out) > MAX_BUCKETS + 1:
            raise TooManyBuckets(f"more than {MAX_BUCKETS} buckets")


def plan(start_us: int, end_us: int, bucket_minutes: int, zone: ZoneInfo) -> Window:
    """The window [start, end) aligned outwards to whole buckets."""
    if bucket_minutes == DAY_MINUTES:
        boundaries = _local_midnights(start_us, end_us, zone)
    else:
        size = bucket_minutes * MINUTE_US
        first = start_us // size * size
        last = -(-end_us // size) * size
        if (last - first) // size > MAX_BUCKETS:
            raise TooManyBuckets(f"more than {MAX_BUCKETS} buckets")
        boundaries = list(range(first, last + 1, size))
    if len(boundaries) - 1 > MAX_BUCKETS:
        raise TooManyBuckets(f"more than {MAX_BUCKETS} buckets")
    if len(boundaries) == 1:
        boundaries.append(boundaries[0] + bucket_minutes * MINUTE_US)
    level = next(
        lv
        for lv in LEVELS
        if bucket_minutes % lv == 0 and all(b % (lv * MINUTE_US) == 0 for b in boundaries)
    )
    return Window(tuple(boundaries), bucket_minutes, level)


def latency_bin(ms: float) -> int:
    """The bin of a duration, as the rollup's SQL computes it."""
    return math.ceil(math.log(min(max(ms, 0.001), 1e9)) / math.log(GAMMA))


def bin_value(i: int) -> float:
    """The value a bin stands for: within (GAMMA - 1) / (GAMMA + 1) (1%) of any value in it."""
    return 2 * GAMMA**i / (GAMMA + 1)


def percentiles(histogram: Iterable[tuple[int, int]], qs: Iterable[float]) -> list[float]:
    """Nearest-rank percentiles (the value at rank ceil(q * n), 1-based) of a histogram of
    (bin, count); 0 for an empty histogram. Samples without a duration are not counted."""
    pairs = sorted((b, c) for b, c in histogram if b != NO_LATENCY_BIN and c > 0)
    total = sum(c for _, c in pairs)
    out: list[float] = []
    for q in qs:
        if not total:
            out.append(0.0)
            continue
        # (less a hair, so that 0.95 * 100 is rank 95, not 96)
        rank = max(1, math.ceil(q * total - 1e-9))
        seen = 0
        for b, c in pairs:
            seen += c
            if seen >= rank:
                out.append(bin_value(b))
                break
    return out
