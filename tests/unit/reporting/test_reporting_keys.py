"""The counting stand-ins for np.unique agree with it, dense or sparse."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from leadflow_reporting.domain.keys import distinct, distinct_counts

values = st.lists(st.one_of(st.integers(-50, 50), st.integers(-(2**40), 2**40)), max_size=200).map(
    lambda v: np.asarray(v, dtype=np.int64)
)


@given(values)
def test_distinct_is_np_unique(keys: np.ndarray) -> None:
    assert distinct(keys).tolist() == np.unique(keys).tolist()


@given(values)
def test_distinct_counts_is_np_unique(keys: np.ndarray) -> None:
    found, inverse, counts = distinct_counts(keys)
    expected, expected_inverse, expected_counts = np.unique(
        keys, return_inverse=True, return_counts=True
    )
    assert found.tolist() == expected.tolist()
    assert inverse.tolist() == expected_inverse.reshape(-1).tolist()
    assert counts.tolist() == expected_counts.tolist()
