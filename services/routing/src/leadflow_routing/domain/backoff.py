"""Retry delays for sink deliveries: exponential backoff with full jitter (AWS architecture
blog "Exponential Backoff and Jitter"): attempt n (1-based, n failed attempts so far) waits a
uniform random time in [0, min(max, initial x 2^(n-1))]. Full jitter spreads the retries of
many deliveries that failed together (a sink that was down) instead of hitting it in waves."""

from __future__ import annotations

import random
from datetime import timedelta

from leadflow_routing.domain.config import RetryPolicy


def backoff_ceiling(policy: RetryPolicy, failed_attempts: int) -> timedelta:
    filled = policy.filled()
    if failed_attempts <= 0:
        return timedelta(0)
    exponent = min(failed_attempts - 1, 62)
    ceiling = filled.initial_backoff * (2**exponent) if exponent < 40 else filled.max_backoff
    return min(ceiling, filled.max_backoff)


def next_delay(
    policy: RetryPolicy, failed_attempts: int, rng: random.Random | None = None
) -> timedelta:
    """The wait before the next attempt after `failed_attempts` failures."""
    ceiling = backoff_ceiling(policy, failed_attempts)
    draw = (rng or random).random()
    return timedelta(seconds=ceiling.total_seconds() * draw)


def exhausted(policy: RetryPolicy, failed_attempts: int) -> bool:
    """True when the delivery is to be dead-lettered."""
    return failed_attempts >= policy.filled().max_attempts
