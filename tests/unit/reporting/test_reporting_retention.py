"""Retention domain: period boundaries in a time zone and a small table worked by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np

from leadflow_reporting.domain.retention import (
    COHORT,
    CONVERSION,
    RETURNING,
    Period,
    boundaries,
    table,
)

DAY = 86_400_000_000


def us(value: datetime) -> int:
    return int(value.timestamp()) * 1_000_000


def test_boundaries_are_local_period_starts_inside_the_range() -> None:
    zone = ZoneInfo("Europe/Berlin")
    start = us(datetime(2025, 1, 15, tzinfo=UTC))
    end = us(datetime(2025, 4, 1, tzinfo=UTC))
    months = boundaries(start, end, 2, Period.MONTH, zone)
    local = [datetime.fromtimestamp(b / 1e6, zone) for b in months.tolist()]
    # Feb and Mar start in the range (Jan 1 does not), Apr 1 00:00 Berlin is before end (UTC).
    assert [(t.month, t.day, t.hour) for t in local] == [
        (2, 1, 0),
        (3, 1, 0),
        (4, 1, 0),
        (5, 1, 0),
        (6, 1, 0),
    ]
    weeks = boundaries(start, start + 14 * DAY, 1, Period.WEEK, zone)
    assert all(datetime.fromtimestamp(b / 1e6, zone).weekday() == 0 for b in weeks.tolist())
    assert len(weeks) == 3


def test_a_small_table_by_hand() -> None:
    bounds = np.arange(0, 6 * DAY, DAY, dtype=np.int64)  # cohorts on days 0..2, periods 2
    rows = [  # (subject, day, flags)
        (1, 0.1, COHORT | RETURNING),
        (1, 1.5, COHORT | RETURNING),
        (1, 3.5, COHORT | RETURNING | CONVERSION),
        (2, 0.5, COHORT | RETURNING),
        (2, 2.2, COHORT | RETURNING | CONVERSION),
        (3, -3.0, COHORT | RETURNING),  # first seen before the range: in no cohort
        (3, 1.0, COHORT | RETURNING),
        (4, 2.5, COHORT | RETURNING),
    ]
    subject = np.asarray([r[0] for r in rows], dtype=np.int64)
    time = np.asarray([int(r[1] * DAY) for r in rows], dtype=np.int64)
    flags = np.asarray([r[2] for r in rows], dtype=np.int64)
    now = int(3.7 * DAY)
    t = table(subject, time, flags, bounds, 3, 2, now, recurring=False)
    assert [(c.size, c.active, c.complete) for c in t.cohorts] == [
        (2, [2, 1, 1], [True, True, True]),
        (0, [0, 0, 0], [True, True, False]),
        (1, [1, 0], [True, False]),
    ]
    # Subject 1 converts on day 3 (outside cohort 0's periods 0..2); subject 2 on day 2.
    assert [c.converted for c in t.cohorts] == [1, 0, 0]
    assert t.average_share == [1.0, 0.5, 0.5]
    assert [(a.active, a.first_time, a.recurring) for a in t.activity] == [
        (2, 2, 0),
        (2, 0, 2),
        (2, 1, 1),
    ]
    r = table(subject, time, flags, bounds, 3, 2, now, recurring=True)
    assert [c.size for c in r.cohorts] == [2, 2, 2]
