"""The channel paths a data-driven fit learns from (proto DataDrivenFit.training_range).

Converting journeys: one per conversion in the training range [start, end), built as for
attribution (the subject's touchpoints inside the lookback window, both ends inclusive).
Non-converting journeys: per subject, its touchpoints in the range after its last
conversion in the range (all of them when it had none), kept inside one lookback window
ending at the newest of them. Identical paths are merged with counts, as ChannelAttribution's
input is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from leadflow_attribution.domain.channel_paths import ChannelPath, PathColumns
from leadflow_attribution.domain.columns import (
    ConversionColumns,
    TouchColumns,
    encode_conversions,
    encode_touchpoints,
    from_micros,
    gather,
    journey_bounds,
    micros,
)
from leadflow_attribution.domain.journey import Conversion, Touchpoint

_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class TrainingSet:
    """Paths with counts, and the newest event the fit saw (proto data_through)."""

    paths: tuple[ChannelPath, ...]
    data_through: datetime | None


@dataclass(frozen=True, eq=False)
class TrainingColumns:
    """The training paths as columns (one per journey, not merged), and data_through."""

    paths: PathColumns
    data_through: datetime | None


def training_columns(
    touches: TouchColumns,
    conversions: ConversionColumns,
    start: datetime,
    end: datetime,
    lookback: timedelta,
) -> TrainingColumns:
    """Paths of the conversions in [start, end) and of the subjects' non-converting tails,
    over columns (each subject's touchpoints ordered as journeys, one per event id)."""
    low, high, window = micros(start), micros(end), lookback // _MICROSECOND
    inside = (conversions.times >= low) & (conversions.times < high)
    chosen = ConversionColumns(
        segments=conversions.segments[inside],
        times=conversions.times[inside],
        opportunity=conversions.opportunity[inside],
        values=(),
        currencies=(),
    )
    conv_start, conv_end = journey_bounds(touches, chosen, window)
    newest = int(chosen.times.max()) if chosen.size else None

    # Non-converting tails: per subject, after its last conversion in the range.
    subjects = len(touches.subjects)
    last_conversion = np.full(subjects, np.iinfo(np.int64).min, dtype=np.int64)
    known = chosen.segments >= 0
    np.maximum.at(last_conversion, chosen.segments[known], chosen.times[known])
    first = touches.position_in_each(low, "left")
    converted = np.flatnonzero(last_conversion != np.iinfo(np.int64).min)
    after = touches.search(converted, last_conversion[converted], "right")
    first[converted] = np.maximum(first[converted], after)
    last = touches.position_in_each(high, "left")
    has = first < last
    # ... kept inside one lookback window ending at the newest of them
    tail = touches.times[np.maximum(last - 1, 0)] if touches.size else last
    oldest = touches.times[np.minimum(first, touches.size - 1)] if touches.size else last
    longer = np.flatnonzero(has & (oldest < tail - window))
    recent = touches.search(longer, tail[longer] - window, "left")
    first[longer] = np.maximum(first[longer], recent)
    tail_start, tail_end = first[has], last[has]
    if tail_end.size:
        newest_tail = int(tail[has].max())
        newest = newest_tail if newest is None else max(newest, newest_tail)

    rows, offsets = gather(
        np.concatenate([conv_start, tail_start]), np.concatenate([conv_end, tail_end])
    )
    count = conv_start.shape[0]
    conversions_per_path = np.zeros(offsets.shape[0] - 1, dtype=np.int64)
    conversions_per_path[:count] = 1
    return TrainingColumns(
        paths=PathColumns(
            channels=touches.channels[rows],
            offsets=offsets,
            conversions=conversions_per_path,
            non_conversions=1 - conversions_per_path,
            values=np.zeros(offsets.shape[0] - 1, dtype=np.float64),
            channel_names=touches.channel_names,
        ),
        data_through=None if newest is None else from_micros(newest),
    )


def merged_paths(paths: PathColumns) -> tuple[ChannelPath, ...]:
    """Identical paths merged with counts, in first-seen order (ChannelAttribution's input)."""
    counts: dict[tuple[str, ...], list[int]] = {}
    names = paths.channel_names
    channels = paths.channels.tolist()
    bounds = paths.offsets.tolist()
    for i, (conversions, failures) in enumerate(
        zip(paths.conversions.tolist(), paths.non_conversions.tolist(), strict=True)
    ):
        key = tuple(names[c] for c in channels[bounds[i] : bounds[i + 1]])
        entry = counts.setdefault(key, [0, 0])
        entry[0] += conversions
        entry[1] += failures
    return tuple(ChannelPath(key, c[0], c[1]) for key, c in counts.items())


def training_paths(
    touchpoints_by_subject: Mapping[str, Sequence[Touchpoint]],
    conversions: Iterable[Conversion],
    start: datetime,
    end: datetime,
    lookback: timedelta,
) -> TrainingSet:
    """training_columns over objects, identical paths merged with counts."""
    touches = encode_touchpoints(touchpoints_by_subject)
    columns = training_columns(
        touches,
        encode_conversions(list(conversions), touches.subject_index()),
        start,
        end,
        lookback,
    )
    return TrainingSet(merged_paths(columns.paths), columns.data_through)
