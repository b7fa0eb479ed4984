"""The real-time view's arithmetic: bucket alignment (UTC multiples, local midnights across
DST), the rollup level chosen, and percentiles from the log-scale histogram."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from leadflow_reporting.domain.realtime import (
    MINUTE_US,
    TooManyBuckets,
    default_bucket_minutes,
    latency_bin,
    percentiles,
    plan,
    valid_bucket_minutes,
)

UTC_ZONE = ZoneInfo("UTC")


def us(value: datetime) -> int:
    return int(value.timestamp()) * 1_000_000


def test_buckets_align_outwards_to_multiples_in_utc() -> None:
    start = us(datetime(2025, 3, 1, 10, 7, tzinfo=UTC)) + 5
    end = us(datetime(2025, 3, 1, 11, 7, tzinfo=UTC))
    w = plan(start, end, 5, UTC_ZONE)
    assert w.start_us == us(datetime(2025, 3, 1, 10, 5, tzinfo=UTC))
    assert w.end_us == us(datetime(2025, 3, 1, 11, 10, tzinfo=UTC))
    assert len(w.starts) == 13 and w.level == 5
    assert w.bucket_of(start) == 0 and w.bucket_of(end - 1) == 12


def test_day_buckets_follow_local_midnight_across_dst() -> None:
    zone = ZoneInfo("Europe/Berlin")
    start = us(datetime(2025, 3, 29, 12, tzinfo=UTC))
    end = us(datetime(2025, 4, 1, 12, tzinfo=UTC))
    w = plan(start, end, 1440, zone)
    locals_ = [datetime.fromtimestamp(b / 1e6, zone) for b in w.boundaries]
    assert [t.day for t in locals_] == [29, 30, 31, 1, 2]
    assert all(t.hour == 0 and t.minute == 0 for t in locals_)
    # The night of the change is 23 hours long; whole hours in UTC: the hourly rollup serves.
    assert w.boundaries[2] - w.boundaries[1] == 23 * 60 * MINUTE_US
    assert w.level == 60


def test_half_hour_offsets_fall_back_to_a_finer_rollup() -> None:
    w = plan(0, 3 * 1440 * MINUTE_US, 1440, ZoneInfo("Asia/Kolkata"))
    assert w.level == 15
    assert plan(0, 3 * 1440 * MINUTE_US, 1440, ZoneInfo("Asia/Kathmandu")).level == 15


def test_defaults_limits_and_valid_buckets() -> None:
    hour = 60 * MINUTE_US
    assert [default_bucket_minutes(h * hour) for h in (1, 6, 24, 168, 720)] == [
        1,
        5,
        15,
        60,
        1440,
    ]
    assert valid_bucket_minutes(120) and not valid_bucket_minutes(7)
    assert not valid_bucket_minutes(0) and not valid_bucket_minutes(2880)
    with pytest.raises(TooManyBuckets):
        plan(0, 2001 * MINUTE_US, 1, UTC_ZONE)
    assert len(plan(0, 2000 * MINUTE_US, 1, UTC_ZONE).starts) == 2000


@pytest.mark.parametrize("seed", range(5))
def test_percentiles_are_within_one_percent_of_the_nearest_rank(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(3, 1.5) for _ in range(rng.randint(1, 3000))]
    histogram: dict[int, int] = {}
    for v in values:
        histogram[latency_bin(v)] = histogram.get(latency_bin(v), 0) + 1
    ordered = sorted(values)
    qs = (0.5, 0.95, 0.99)
    for q, got in zip(qs, percentiles(histogram.items(), qs), strict=True):
        exact = ordered[max(1, math.ceil(q * len(values) - 1e-9)) - 1]
        assert got == pytest.approx(exact, rel=0.01)


def test_empty_histogram_and_samples_without_duration() -> None:
    assert percentiles([], (0.5,)) == [0.0]
    assert percentiles([(32767, 4)], (0.5, 0.99)) == [0.0, 0.0]
