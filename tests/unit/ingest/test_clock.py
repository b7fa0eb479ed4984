"""Clock skew correction, the 24 h future clamp, the 72 h backfill flag, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadflow_ingest.domain.clock import CorrectedTime, correct_occurred_at, outside_retention

RECEIVED = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


def test_missing_occurred_at_is_the_receive_time() -> None:
    assert correct_occurred_at(None, None, RECEIVED) == CorrectedTime(RECEIVED)
    assert correct_occurred_at(None, RECEIVED - H, RECEIVED) == CorrectedTime(RECEIVED)


def test_skew_is_corrected_with_sent_at() -> None:
    # The client's clock is 2 h 5 min slow: it says the event happened at 09:55 and was sent
    # at 10:00; the server received it at 12:00, so it happened 5 minutes earlier: 11:55.
    occurred = datetime(2025, 6, 1, 9, 55, tzinfo=UTC)
    sent = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)
    result = correct_occurred_at(occurred, sent, RECEIVED)
    assert result == CorrectedTime(datetime(2025, 6, 1, 11, 55, tzinfo=UTC))


def test_a_fast_client_clock_is_corrected_not_clamped() -> None:
    # 25 h fast, but sent_at by the same clock: the event happened 10 s before receipt.
    occurred = RECEIVED + 25 * H
    sent = occurred + timedelta(seconds=10)
    assert correct_occurred_at(occurred, sent, RECEIVED) == CorrectedTime(
        RECEIVED - timedelta(seconds=10)
    )


def test_without_sent_at_occurred_at_is_kept() -> None:
    occurred = RECEIVED - 3 * H
    assert correct_occurred_at(occurred, None, RECEIVED) == CorrectedTime(occurred)


def test_25_hours_in_the_future_is_clamped() -> None:
    result = correct_occurred_at(RECEIVED + 25 * H, None, RECEIVED)
    assert result == CorrectedTime(RECEIVED, clamped=True, backfill=False)


def test_24_hours_in_the_future_is_kept() -> None:
    assert correct_occurred_at(RECEIVED + 24 * H, None, RECEIVED) == CorrectedTime(
        RECEIVED + 24 * H
    )
    one_more = RECEIVED + 24 * H + timedelta(microseconds=1)
    assert correct_occurred_at(one_more, None, RECEIVED).clamped


def test_clamp_applies_after_correction() -> None:
    # sent_at before occurred_at by 30 h: corrected occurred_at is 30 h after receipt.
    occurred = RECEIVED
    sent = RECEIVED - 30 * H
    assert correct_occurred_at(occurred, sent, RECEIVED) == CorrectedTime(RECEIVED, clamped=True)


@pytest.mark.parametrize(
    ("age", "backfill"),
    [(71 * H, False), (72 * H, False), (72 * H + timedelta(seconds=1), True), (73 * H, True)],
)
def test_older_than_72_hours_is_backfill(age: timedelta, backfill: bool) -> None:
    result = correct_occurred_at(RECEIVED - age, None, RECEIVED)
    assert result == CorrectedTime(RECEIVED - age, clamped=False, backfill=backfill)


def test_backfill_after_correction() -> None:
    # A client that replays a 73-hour-old event sends occurred_at 73 h before its sent_at.
    occurred = datetime(2025, 1, 1, tzinfo=UTC)
    result = correct_occurred_at(occurred, occurred + 73 * H, RECEIVED)
    assert result == CorrectedTime(RECEIVED - 73 * H, backfill=True)


def test_thresholds_are_parameters() -> None:
    result = correct_occurred_at(RECEIVED - 2 * H, None, RECEIVED, future_limit=H, backfill_after=H)
    assert result.backfill
    assert correct_occurred_at(RECEIVED + 2 * H, None, RECEIVED, future_limit=H).clamped


def test_corrections_beyond_the_datetime_range() -> None:
    earliest = datetime.min.replace(tzinfo=UTC)
    latest = datetime.max.replace(tzinfo=UTC)
    to_past = correct_occurred_at(earliest, latest, RECEIVED)
    assert to_past == CorrectedTime(earliest, backfill=True)
    to_future = correct_occurred_at(latest, earliest, RECEIVED)
    assert to_future == CorrectedTime(RECEIVED, clamped=True)


def test_retention_boundary() -> None:
    assert not outside_retention(RECEIVED - timedelta(days=365), RECEIVED, 365)
    assert outside_retention(RECEIVED - timedelta(days=365, seconds=1), RECEIVED, 365)
    assert outside_retention(RECEIVED - timedelta(days=31), RECEIVED, 30)
    assert not outside_retention(RECEIVED + H, RECEIVED, 1)


def test_retention_edge_values() -> None:
    assert not outside_retention(datetime.min.replace(tzinfo=UTC), RECEIVED, 10**8)
    with pytest.raises(ValueError):
        outside_retention(RECEIVED, RECEIVED, 0)


moments = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(moments, st.none() | moments, moments)
def test_corrected_time_is_never_beyond_the_future_limit(
    occurred: datetime, sent: datetime | None, received: datetime
) -> None:
    result = correct_occurred_at(occurred, sent, received)
    assert result.occurred_at - received <= timedelta(hours=24)
    assert not (result.clamped and result.backfill)
    assert result.backfill == (received - result.occurred_at > timedelta(hours=72))


@given(moments, moments)
def test_sent_at_equal_to_occurred_at_means_it_happened_at_receipt(
    occurred: datetime, received: datetime
) -> None:
    assert correct_occurred_at(occurred, occurred, received) == CorrectedTime(received)


@given(moments, st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)), moments)
def test_the_clients_interval_is_kept(
    occurred: datetime, delay: timedelta, received: datetime
) -> None:
    assert correct_occurred_at(occurred, occurred + delay, received).occurred_at == (
        received - delay
    )
