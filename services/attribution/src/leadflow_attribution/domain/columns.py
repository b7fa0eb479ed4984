"""Touchpoints and conversions as integer columns, so journeys, fits and credits run over
numpy arrays instead of one Python object per touchpoint.

Touchpoints are grouped per subject (a segment), each segment ordered as journeys are
((occurred_at, event_id), one row per event id); times are integer microseconds since the
Unix epoch and channels are codes into `channel_names` (labels as the models name them:
"(none)" for an empty channel). Windows of a segment (a journey, a training path) are
found by binary search on one sorted key (segment, time) for all queries at once.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from leadflow_attribution.domain.journey import (
    Conversion,
    Touchpoint,
    channel_label,
    ordered_unique,
)

Ints = npt.NDArray[np.int64]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
NO_TIME = np.iinfo(np.int64).min  # a conversion without an opportunity entry
# The (segment, time) key must fit an int64 with room to spare.
_KEY_LIMIT = 2**62


def micros(moment: datetime) -> int:
    """`moment` (timezone-aware) as integer microseconds since the Unix epoch."""
    return (moment - EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


@dataclass(eq=False)
class TouchColumns:
    """Touchpoints per subject: subject i owns rows offsets[i]:offsets[i + 1].

    `touchpoints` (optional) holds the rows as objects, for callers that return journeys.
    """

    subjects: tuple[str, ...]
    offsets: Ints
    times: Ints
    channels: Ints
    channel_names: tuple[str, ...]
    touchpoints: Sequence[Touchpoint] | None = None
    _keys: tuple[Ints, int, int] | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        return int(self.times.shape[0])

    def subject_index(self) -> dict[str, int]:
        return {subject: i for i, subject in enumerate(self.subjects)}

    def _sorted_key(self) -> tuple[Ints, int, int] | None:
        """(key of every row, base, span): key = segment x span + (time - base); None when
        the key would not fit an int64 (the searches then go one by one)."""
        if self._keys is None:
            if not self.size:
                base, span = 0, 1
            else:
                base = int(self.times.min()) - 1
                span = int(self.times.max()) - base + 2
            if len(self.subjects) * span >= _KEY_LIMIT:
                return None
            segment = np.repeat(
                np.arange(len(self.subjects), dtype=np.int64), np.diff(self.offsets)
            )
            self._keys = (segment * span + (self.times - base), base, span)
        return self._keys

    def position_in_each(self, moment: int, side: str) -> Ints:
        """search() for the same moment in every segment: by counting each segment's rows
        below it in one pass, cheaper than a binary search per segment."""
        below = self.times < moment if side == "left" else self.times <= moment
        running = np.zeros(self.size + 1, dtype=np.int64)
        np.cumsum(below, out=running[1:])
        return self.offsets[:-1] + running[self.offsets[1:]] - running[self.offsets[:-1]]

    def search(self, segments: Ints, moments: Ints, side: str) -> Ints:
        """Per query, the row index where `moments[q]` would go in segment `segments[q]`'s
        times (bisect_left for side="left", bisect_right for "right"); segment -1 (a subject
        without touchpoints) gives 0."""
        found = np.zeros(segments.shape[0], dtype=np.int64)
        known = segments >= 0
        keys = self._sorted_key()
        if keys is None:
            bisect = bisect_left if side == "left" else bisect_right
            times = self.times.tolist()
            starts = self.offsets.tolist()
            for q in np.flatnonzero(known).tolist():
                s = int(segments[q])
                found[q] = bisect(times, int(moments[q]), starts[s], starts[s + 1])
            return found
        key, base, span = keys
        clipped = np.clip(moments[known], base, base + span - 1) - base
        query = segments[known] * span + clipped
        found[known] = np.searchsorted(key, query, side=side)  # type: ignore[call-overload]
        return found


def encode_touchpoints(by_subject: Mapping[str, Iterable[Touchpoint]]) -> TouchColumns:
    """Columns of each subject's touchpoints (any order, duplicates allowed: one per event
    id is kept and they are ordered as build_journey orders them)."""
    subjects: list[str] = []
    offsets = [0]
    rows: list[Touchpoint] = []
    for subject, touchpoints in by_subject.items():
        subjects.append(subject)
        rows.extend(ordered_unique(touchpoints))
        offsets.append(len(rows))
    return columns_of(subjects, offsets, rows)


def columns_of(
    subjects: Sequence[str], offsets: Sequence[int], rows: Sequence[Touchpoint]
) -> TouchColumns:
    """Columns of rows already grouped per subject and ordered (as the repository reads)."""
    codes: dict[str, int] = {}
    channels = [codes.setdefault(channel_label(t.channel), len(codes)) for t in rows]
    return TouchColumns(
        subjects=tuple(subjects),
        offsets=np.asarray(offsets, dtype=np.int64),
        times=np.fromiter((micros(t.occurred_at) for t in rows), np.int64, len(rows)),
        channels=np.asarray(channels, dtype=np.int64),
        channel_names=tuple(codes),
        touchpoints=rows,
    )


@dataclass(frozen=True, eq=False)
class ConversionColumns:
    """Conversions as columns: `segments[i]` is the subject's segment in the touchpoint
    columns (-1 when it has no touchpoint); `opportunity` is NO_TIME when absent."""

    segments: Ints
    times: Ints
    opportunity: Ints
    values: Sequence[Decimal]
    currencies: Sequence[str]

    @property
    def size(self) -> int:
        return int(self.times.shape[0])


def encode_conversions(
    conversions: Sequence[Conversion], subject_index: Mapping[str, int]
) -> ConversionColumns:
    return ConversionColumns(
        segments=np.fromiter(
            (subject_index.get(c.subject, -1) for c in conversions), np.int64, len(conversions)
        ),
        times=np.fromiter((micros(c.occurred_at) for c in conversions), np.int64, len(conversions)),
        opportunity=np.fromiter(
            (
                NO_TIME if c.opportunity_at is None else micros(c.opportunity_at)
                for c in conversions
            ),
            np.int64,
            len(conversions),
        ),
        values=[c.value for c in conversions],
        currencies=[c.currency for c in conversions],
    )


def gather(starts: Ints, ends: Ints) -> tuple[Ints, Ints]:
    """Row indices of the ranges starts[i]:ends[i], concatenated, and the offsets of each
    range in that concatenation (len(starts) + 1)."""
    lengths = np.maximum(ends - starts, 0)
    offsets = np.zeros(lengths.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    nonempty = lengths > 0
    first, last = starts[nonempty], starts[nonempty] + lengths[nonempty]
    # a running sum of steps: 1 inside a range, a jump to the next range's start after it
    steps = np.ones(int(offsets[-1]), dtype=np.int64)
    if first.size:
        steps[0] = first[0]
        steps[offsets[1:][nonempty][:-1]] = first[1:] - last[:-1] + 1
    return np.cumsum(steps), offsets


def journey_bounds(
    touches: TouchColumns, conversions: ConversionColumns, lookback_us: int
) -> tuple[Ints, Ints]:
    """Rows start:end of each conversion's journey: its subject's touchpoints with
    conversion - lookback <= t <= conversion (both ends inclusive, as build_journey)."""
    start = touches.search(conversions.segments, conversions.times - lookback_us, "left")
    end = touches.search(conversions.segments, conversions.times, "right")
    return start, np.maximum(end, start)


def opportunity_anchors(
    touches: TouchColumns, conversions: ConversionColumns, start: Ints, end: Ints
) -> Ints:
    """Per conversion, the opportunity touch's position in its journey (journey.
    opportunity_index), -1 when there is none."""
    anchors = np.full(conversions.size, -1, dtype=np.int64)
    has = (conversions.opportunity != NO_TIME) & (conversions.opportunity <= conversions.times)
    has &= end > start
    if has.any():
        at = touches.search(conversions.segments[has], conversions.opportunity[has], "right")
        position = np.minimum(at, end[has]) - start[has] - 1
        anchors[has] = np.where(position >= 0, position, -1)
    return anchors
