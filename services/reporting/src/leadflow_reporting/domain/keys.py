"""Distinct values of integer keys without sorting when they span a small range: a count per
possible value (bincount) stands in for np.unique, linear instead of n log n."""

from __future__ import annotations

import numpy as np

from leadflow_reporting.domain.funnel import I64

# Keys spanning at most this many values are counted in an array (64 MiB of int64 at most).
DENSE_SPAN = 1 << 23


def distinct(keys: I64) -> I64:
    """The distinct keys, ascending."""
    if not len(keys):
        return keys
    lo, hi = int(keys.min()), int(keys.max())
    if hi - lo >= 8 * DENSE_SPAN:
        return np.unique(keys)
    seen = np.zeros(hi - lo + 1, dtype=bool)
    seen[keys - lo] = True
    return np.flatnonzero(seen) + lo


def distinct_counts(keys: I64) -> tuple[I64, I64, I64]:
    """(distinct keys ascending, each key's index among them, count of each)."""
    if not len(keys):
        return keys, keys, keys
    lo, hi = int(keys.min()), int(keys.max())
    if hi - lo >= DENSE_SPAN:
        found, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        return found, inverse.reshape(-1), counts
    counts = np.bincount(keys - lo)
    present = np.flatnonzero(counts)
    position = np.cumsum(counts > 0) - 1
    return present + lo, position[keys - lo], counts[present]
