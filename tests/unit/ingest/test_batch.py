"""Batch size, duplicates inside a batch, bus messages under a byte limit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadflow_ingest.domain.batch import (
    dedupe_within_batch,
    framed_size,
    split_for_publishing,
    validate_batch_size,
)
from leadflow_ingest.domain.model import IncomingEvent


def test_batch_size() -> None:
    assert validate_batch_size(1) == []
    assert validate_batch_size(1000) == []
    [too_many] = validate_batch_size(1001)
    assert (too_many.field, too_many.code) == ("events", "INVALID_VALUE")
    assert "1001" in too_many.reason
    [empty] = validate_batch_size(0)
    assert (empty.field, empty.code) == ("events", "FIELD_REQUIRED")


def test_the_second_copy_of_an_id_is_a_duplicate() -> None:
    events = [
        IncomingEvent(index=0, event_id="a"),
        IncomingEvent(index=1, event_id="b"),
        IncomingEvent(index=2, event_id="a"),
        IncomingEvent(index=3, event_id=""),
        IncomingEvent(index=4, event_id=""),
        IncomingEvent(index=5, event_id="b"),
        IncomingEvent(index=6, event_id="a"),
    ]
    first, duplicates = dedupe_within_batch(events)
    assert [e.index for e in first] == [0, 1, 3, 4]
    assert duplicates == [2, 5, 6]


def test_duplicates_are_reported_by_request_index() -> None:
    # Rejected events were removed before: positions and indexes differ.
    valid = [IncomingEvent(index=4, event_id="x"), IncomingEvent(index=9, event_id="x")]
    assert dedupe_within_batch(valid) == ([valid[0]], [9])


def test_split_hand_cases() -> None:
    assert split_for_publishing([], 10) == []
    assert split_for_publishing([4, 4, 4], 10) == [range(0, 2), range(2, 3)]
    assert split_for_publishing([5, 5, 5, 5], 10) == [range(0, 2), range(2, 4)]
    assert split_for_publishing([3, 12, 3], 10) == [range(0, 1), range(1, 2), range(2, 3)]
    assert split_for_publishing([1] * 5, 10) == [range(0, 5)]
    assert split_for_publishing([4, 4], 10, envelope_bytes=3) == [range(0, 1), range(1, 2)]


def test_framed_sizes_count_the_protobuf_tag_and_length() -> None:
    assert framed_size(0) == 2
    assert framed_size(127) == 129
    assert framed_size(128) == 131
    assert framed_size(16_384) == 16_388
    # 3 events of 127 bytes framed are 3 x 129 = 387 bytes.
    assert split_for_publishing([127] * 3, 387, framed=True) == [range(0, 3)]
    assert split_for_publishing([127] * 3, 386, framed=True) == [range(0, 2), range(2, 3)]


def test_split_refuses_a_non_positive_limit() -> None:
    with pytest.raises(ValueError):
        split_for_publishing([1], 0)


@given(st.lists(st.integers(0, 300), max_size=60), st.integers(1, 1000))
def test_split_covers_every_event_once_in_order_and_greedily(sizes: list[int], limit: int) -> None:
    chunks = split_for_publishing(sizes, limit)
    assert [i for chunk in chunks for i in chunk] == list(range(len(sizes)))
    for chunk in chunks:
        total = sum(sizes[i] for i in chunk)
        assert len(chunk) >= 1
        assert total <= limit or len(chunk) == 1
        if chunk.stop < len(sizes):
            assert total + sizes[chunk.stop] > limit  # the next one would not have fit


@given(st.lists(st.sampled_from(["a", "b", "c", ""]), max_size=30))
def test_dedupe_keeps_one_of_each_id(ids: list[str]) -> None:
    events = [IncomingEvent(index=i, event_id=e) for i, e in enumerate(ids)]
    first, duplicates = dedupe_within_batch(events)
    assert len(first) + len(duplicates) == len(events)
    named = [e.event_id for e in first if e.event_id]
    assert len(named) == len(set(named)) == len({e for e in ids if e})
