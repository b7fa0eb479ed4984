"""The value-sort orders agree with numpy's stable argsort and lexsort, narrow keys or wide
(the argsort fallback), and group_order keeps each group together in input order even when
groups share the high bits it sorts by."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from leadflow_reporting.domain.ordering import group_order, lex_order, sorted_order, stable_order

narrow = st.integers(-50, 50)
wide = st.integers(-(2**62), 2**62)
keys = st.lists(st.one_of(narrow, wide), max_size=200).map(lambda v: np.asarray(v, np.int64))


@given(keys)
def test_stable_order_is_stable_argsort(key: np.ndarray) -> None:
    assert stable_order(key).tolist() == np.argsort(key, kind="stable").tolist()


@given(keys)
def test_sorted_order_gives_the_sorted_keys_with_the_order(key: np.ndarray) -> None:
    order, ordered = sorted_order(key)
    assert order.tolist() == np.argsort(key, kind="stable").tolist()
    assert ordered.tolist() == np.sort(key).tolist()


@given(st.lists(st.tuples(narrow, st.one_of(narrow, wide)), max_size=200))
def test_lex_order_is_lexsort(pairs: list[tuple[int, int]]) -> None:
    primary = np.asarray([p for p, _ in pairs], dtype=np.int64)
    secondary = np.asarray([s for _, s in pairs], dtype=np.int64)
    assert lex_order(primary, secondary).tolist() == np.lexsort((secondary, primary)).tolist()


def grouped_in_input_order(hashed: np.ndarray, idx: np.ndarray) -> bool:
    """Every value's rows form one run, in input order, and every row appears once."""
    if sorted(idx.tolist()) != list(range(len(hashed))):
        return False
    runs: list[int] = []
    for i, row in enumerate(idx.tolist()):
        if i and hashed[row] == hashed[idx[i - 1]]:
            if row < idx[i - 1]:
                return False
        else:
            runs.append(int(hashed[row]))
    return len(runs) == len(set(runs))


# Hashes drawn from few high-bit prefixes, so that several groups share the prefix the sort
# goes by (the low bits, below the index, tell them apart).
hashes = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 7)).map(lambda p: (p[0] << 61) | p[1]),
    max_size=120,
).map(lambda v: np.asarray(v, dtype=np.uint64))


@given(hashes)
def test_group_order_groups_rows_sharing_high_bits(hashed: np.ndarray) -> None:
    assert grouped_in_input_order(hashed, group_order(hashed))


@given(st.lists(st.integers(0, 2**64 - 1), max_size=120))
def test_group_order_groups_any_hashes(values: list[int]) -> None:
    # Repeat some values so that groups have several rows.
    hashed = np.asarray(values + values[::2], dtype=np.uint64)
    assert grouped_in_input_order(hashed, group_order(hashed))


def test_colliding_prefixes_are_sorted_apart() -> None:
    # Four rows: two bits of index; 0b100 and 0b101 share everything above them.
    hashed = np.asarray([0b100, 0b101, 0b100, 0b101], dtype=np.uint64)
    idx = group_order(hashed)
    assert grouped_in_input_order(hashed, idx)
    assert sorted([idx[:2].tolist(), idx[2:].tolist()]) == [[0, 2], [1, 3]]
