"""Funnel rows: plain steps fetch the event type and look their mask up; steps with filters or
custom names keep the mask computed by PostgreSQL."""

from __future__ import annotations

import struct

import numpy as np

from leadflow_reporting.db.funnel_rows import PG_EPOCH_US, funnel_sql, parse_copy, type_masks
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
    sql, _ = funnel_sql("t", q)
    assert "CASE" not in sql and "event_type FROM" in sql


def test_filters_and_custom_names_keep_the_sql_mask() -> None:
    plan = PropertyFilter("event", "plan", Operator.EQUALS, ("pro",))
    assert type_masks(query(Selector(1), Selector(5, filters=(plan,)))) is None
    assert type_masks(query(Selector(1), Selector(24, "quiz"))) is None
    sql, _ = funnel_sql("t", query(Selector(1), Selector(24, "quiz"), order=Order.STRICT))
    assert "CASE" in sql


def test_typed_rows_parse_to_masks() -> None:
    header = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
    body = b"".join(
        struct.pack(">hiiiqih", 3, 4, subject, 8, t, 2, kind)
        for subject, t, kind in ((7, 10, 1), (7, 20, 5), (8, 30, 99))
    )
    lut = np.zeros(25, dtype=np.int64)
    lut[1], lut[5] = 1, 2
    rows, _ = parse_copy(header + body + b"\xff\xff", masks=lut)
    assert rows.subject.tolist() == [7, 7, 8]
    assert (rows.time - PG_EPOCH_US).tolist() == [10, 20, 30]
    assert rows.mask.tolist() == [1, 2, 0]
