"""Client clock skew correction, the future clamp, the backfill flag and retention.

As Segment and PostHog do: a client's clock may be wrong, but the interval between its
occurred_at and its sent_at (both by that clock) is right, so the event happened that long
before the server received it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

FUTURE_LIMIT = timedelta(hours=24)
BACKFILL_AFTER = timedelta(hours=72)
_EARLIEST = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CorrectedTime:
    """occurred_at to store, and the RecordedEventFlags it earned."""

    occurred_at: datetime
    clamped: bool = False
    backfill: bool = False


def correct_occurred_at(
    occurred_at: datetime | None,
    sent_at: datetime | None,
    received_at: datetime,
    *,
    future_limit: timedelta = FUTURE_LIMIT,
    backfill_after: timedelta = BACKFILL_AFTER,
) -> CorrectedTime:
    """When the event happened, by the server's clock.

    - no occurred_at: received_at (sent_at is then meaningless);
    - with sent_at (the event's own, else the batch's: the caller picks):
      received_at - (sent_at - occurred_at); without it occurred_at as sent;
    - more than `future_limit` after received_at (strictly): received_at, clamped;
    - more than `backfill_after` before received_at (strictly): kept, backfill flag;
    - a correction beyond the datetime range (timestamps thousands of years apart) is
      clamped like a future time, or set to the earliest datetime with the backfill flag
      (then the retention check rejects it).
    All datetimes must be aware.
    """
    if occurred_at is None:
        return CorrectedTime(received_at)
    corrected = occurred_at
    if sent_at is not None:
        try:
            corrected = received_at - (sent_at - occurred_at)
        except OverflowError:
            if sent_at > occurred_at:
                return CorrectedTime(_EARLIEST, backfill=True)
            return CorrectedTime(received_at, clamped=True)
    ahead = corrected - received_at
    if ahead > future_limit:
        return CorrectedTime(received_at, clamped=True)
    return CorrectedTime(corrected, backfill=-ahead > backfill_after)


def outside_retention(occurred_at: datetime, received_at: datetime, retention_days: int) -> bool:
    """True when the event is older than the retention period, so the retention job would
    delete it at once (OUTSIDE_RETENTION). Exactly `retention_days` old is still inside."""
    if retention_days <= 0:
        raise ValueError("retention_days must be positive")
    try:
        cutoff = received_at - timedelta(days=retention_days)
    except OverflowError:
        return False
    return occurred_at < cutoff
