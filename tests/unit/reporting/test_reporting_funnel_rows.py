"""Funnel rows: plain steps fetch the event type and look their mask up; steps with filters or
custom names keep the mask computed by PostgreSQL; rows pack the subject with the type or
mask, and come in time slices, packed by PostgreSQL into a value per time bucket."""

from __future__ import annotations

import struct

import numpy as np

from leadflow_reporting.db.funnel_rows import PG_EPOCH_US, funnel_sql, parse_rows, type_masks
from leadflow_reporting.db.row_slices import BUCKETS, packed_sql, time_slices
from leadflow_reporting.domain.funnel import EXCLUSION_BIT, Order
from leadflow_reporting.domain.query import FunnelQuery, Operator, PropertyFilter, Selector

DAY = 86_400_000_000


def query(*steps: Selector, **fields) -> FunnelQuery:
    return FunnelQuery(0, DAY, steps, tuple("x" for _ in steps), DAY, **fields)


def test_masks_by_type_with_shared_types_and_exclusions() -> None:
    q = query(Selector(1), Selector(5), Selector(1), exclusions=((Selector(2), 0, 1),))
    lut = type_masks(q)
    assert lut is not None
    assert lut[1] == 0b101 and lut[5] == 0b010 and lut[2] == 1 << EXCLUSION_BIT
    assert lut[3] == 0
    sql = funnel_sql("t", q)
    assert "CASE" not in sql and "| event_type, occurred_at FROM" in sql


def test_filters_and_custom_names_keep_the_sql_mask() -> None:
    plan = PropertyFilter("event", "plan", Operator.EQUALS, ("pro",))
    assert type_masks(query(Selector(1), Selector(5, filters=(plan,)))) is None
    assert type_masks(query(Selector(1), Selector(24, "quiz"))) is None
    sql = funnel_sql("t", query(Selector(1), Selector(24, "quiz"), order=Order.STRICT))
    assert "CASE" in sql


def packed(rows: list[tuple[int, int, int]]) -> bytes:
    """Packed (subject << 32 | low, timestamptz) rows, as int8send and timestamptz_send
    write them."""
    return b"".join(struct.pack(">qq", (s << 32) | low, t) for s, t, low in rows)


def test_typed_rows_parse_to_masks() -> None:
    lut = np.zeros(25, dtype=np.int64)
    lut[1], lut[5] = 1, 2
    rows, _ = parse_rows([packed([(7, 10, 1), (7, 20, 5), (8, 30, 99)])], masks=lut)
    assert rows.subject.tolist() == [7, 7, 8]
    assert (rows.time - PG_EPOCH_US).tolist() == [10, 20, 30]
    assert rows.mask.tolist() == [1, 2, 0]


def test_values_parse_as_one_in_order() -> None:
    big_subject, high_mask = 2**31 - 1, 1 << (EXCLUSION_BIT + 9)
    rows, _ = parse_rows([packed([(3, 1, 4)]), packed([(big_subject, -5, high_mask)])])
    assert rows.subject.tolist() == [3, big_subject]
    assert (rows.time - PG_EPOCH_US).tolist() == [1, -5]
    assert rows.mask.tolist() == [4, high_mask]


def test_masks_computed_by_postgresql_are_packed_after_the_filter() -> None:
    plan = PropertyFilter("event", "plan", Operator.EQUALS, ("pro",))
    sql = funnel_sql("t", query(Selector(1), Selector(5, filters=(plan,))), lo_us=5, hi_us=9)
    assert "(subject_id::int8 << 32) | mask" in sql and "WHERE mask <> 0" in sql
    assert "interval '5 microseconds'" in sql and "interval '9 microseconds'" in sql


def test_buckets_step_through_the_slice() -> None:
    sql = packed_sql(lambda lo, hi: f"SELECT {lo}, {hi}", ["int8", "int4"], 0, 10 * BUCKETS)
    assert "interval '10 microseconds'" in sql and "int8send(r.c0) || int4send(r.c1)" in sql
    # A slice shorter than BUCKETS microseconds steps one microsecond at a time.
    assert "interval '1 microseconds'" in packed_sql(lambda lo, hi: "", ["int4"], 0, 3)


def test_time_slices_cover_the_range_in_order() -> None:
    assert time_slices(0, 10, 2) == [(0, 5), (5, 10)]
    assert time_slices(0, 10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert time_slices(0, 1, 2) == [(0, 1)]
    assert time_slices(4, 9, 1) == [(4, 9)]
