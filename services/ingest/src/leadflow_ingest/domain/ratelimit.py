"""Per-key rate limiting: token buckets, time passed in (a monotonic clock in seconds)."""

from __future__ import annotations

import math
from collections import OrderedDict


class TokenBucket:
    """Holds up to `burst` tokens, refilled at `rate_per_second`; starts full.

    `take(n, now)` takes n tokens and answers 0.0, or takes nothing and answers how many
    seconds to wait until n tokens are there. A clock that goes back refills nothing.
    """

    __slots__ = ("_tokens", "_updated", "burst", "rate")

    def __init__(self, rate_per_second: float, burst: float) -> None:
        if rate_per_second <= 0 or burst <= 0:
            raise ValueError("rate_per_second and burst must be positive")
        self.rate = float(rate_per_second)
        self.burst = float(burst)
        self._tokens = self.burst
        self._updated: float | None = None

    def tokens(self, now: float) -> float:
        """Tokens available at `now` (without taking any)."""
        self._refill(now)
        return self._tokens

    def take(self, n: float, now: float) -> float:
        if n < 0:
            raise ValueError("cannot take a negative number of tokens")
        if n > self.burst:
            raise ValueError(f"cannot take {n} tokens from a bucket of {self.burst}")
        self._refill(now)
        if self._tokens >= n:
            self._tokens -= n
            return 0.0
        return (n - self._tokens) / self.rate

    def _refill(self, now: float) -> None:
        if self._updated is None:
            self._updated = now
            return
        elapsed = now - self._updated
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._updated = now


class KeyedBuckets:
    """One TokenBucket per key (e.g. per API key), at most `max_keys` of them.

    The least recently used bucket is dropped beyond `max_keys`; it was idle the longest, so
    it has refilled the most, and a returning key starts with a full bucket again.
    """

    __slots__ = ("_buckets", "burst", "max_keys", "rate")

    def __init__(self, rate_per_second: float, burst: float, max_keys: int = 10_000) -> None:
        if max_keys <= 0:
            raise ValueError("max_keys must be positive")
        TokenBucket(rate_per_second, burst)  # validates the pair
        self.rate = rate_per_second
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, n: float, now: float) -> float:
        """As TokenBucket.take, for `key`'s bucket."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(n, now)


def retry_after_seconds(wait: float) -> int:
    """The `retry-after` value in whole seconds for a wait: rounded up, at least 1."""
    return max(1, math.ceil(wait))
