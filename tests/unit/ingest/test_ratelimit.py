"""Token buckets per key, with time passed in."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadflow_ingest.domain.ratelimit import KeyedBuckets, TokenBucket, retry_after_seconds


def test_burst_then_wait() -> None:
    bucket = TokenBucket(rate_per_second=2.0, burst=5)
    assert [bucket.take(1, now=100.0) for _ in range(5)] == [0.0] * 5
    assert bucket.take(1, now=100.0) == pytest.approx(0.5)
    assert bucket.take(3, now=100.0) == pytest.approx(1.5)
    assert bucket.take(1, now=100.25) == pytest.approx(0.25)  # half a token is there
    assert bucket.take(1, now=100.5) == 0.0
    assert bucket.tokens(100.5) == pytest.approx(0.0)


def test_refill_is_capped_at_the_burst() -> None:
    bucket = TokenBucket(1.0, 3)
    bucket.take(3, now=0.0)
    assert bucket.tokens(1_000.0) == 3.0


def test_a_denied_take_takes_nothing() -> None:
    bucket = TokenBucket(1.0, 2)
    bucket.take(2, now=0.0)
    assert bucket.take(2, now=1.0) == pytest.approx(1.0)
    assert bucket.tokens(1.0) == pytest.approx(1.0)


def test_a_clock_going_back_refills_nothing() -> None:
    bucket = TokenBucket(10.0, 10)
    bucket.take(10, now=50.0)
    assert bucket.take(1, now=40.0) == pytest.approx(0.1)
    assert bucket.take(1, now=50.1) == 0.0


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0, 1)
    with pytest.raises(ValueError):
        TokenBucket(1, 0)
    with pytest.raises(ValueError):
        TokenBucket(1, 5).take(6, now=0.0)
    with pytest.raises(ValueError):
        TokenBucket(1, 5).take(-1, now=0.0)
    with pytest.raises(ValueError):
        KeyedBuckets(1, 5, max_keys=0)


def test_keys_have_their_own_buckets() -> None:
    buckets = KeyedBuckets(rate_per_second=1.0, burst=2)
    assert buckets.take("key-a", 2, now=0.0) == 0.0
    assert buckets.take("key-a", 1, now=0.0) == pytest.approx(1.0)
    assert buckets.take("key-b", 2, now=0.0) == 0.0


def test_memory_is_bounded_by_dropping_the_least_recently_used() -> None:
    buckets = KeyedBuckets(1.0, 1, max_keys=3)
    for key in ("a", "b", "c"):
        buckets.take(key, 1, now=0.0)
    buckets.take("a", 1, now=0.0)  # a is now the most recently used (and denied)
    buckets.take("d", 1, now=0.0)  # drops b
    assert len(buckets) == 3
    assert buckets.take("a", 1, now=0.0) > 0  # still remembered: empty
    assert buckets.take("b", 1, now=0.0) == 0.0  # forgotten: a fresh bucket


@pytest.mark.parametrize(("wait", "seconds"), [(0.0, 1), (0.2, 1), (1.0, 1), (1.01, 2), (59.5, 60)])
def test_retry_after_seconds(wait: float, seconds: int) -> None:
    assert retry_after_seconds(wait) == seconds


@given(
    st.floats(0.1, 100),
    st.integers(1, 50),
    st.lists(st.tuples(st.floats(0, 5), st.integers(1, 50)), max_size=40),
)
def test_never_more_than_burst_plus_refill(
    rate: float, burst: int, steps: list[tuple[float, int]]
) -> None:
    bucket = TokenBucket(rate, burst)
    now = granted = 0.0
    for delay, n in steps:
        now += delay
        n = min(n, burst)
        wait = bucket.take(n, now)
        assert wait >= 0.0
        if wait == 0.0:
            granted += n
        else:
            # Waiting as told is enough (asked of a copy: asking refills the bucket).
            assert copy.copy(bucket).take(n, now + wait + 1e-9) == 0.0
    assert granted <= burst + rate * now + 1e-6
