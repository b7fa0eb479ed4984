"""The channel paths a data-driven fit learns from (proto DataDrivenFit.training_range).

Converting journeys: one per conversion in the training range [start, end), built as for
attribution (the subject's touchpoints inside the lookback window, both ends inclusive).
Non-converting journeys: per subject, its touchpoints in the range after its last
conversion in the range (all of them when it had none), kept inside one lookback window
ending at the newest of them. Identical paths are merged with counts, as ChannelAttribution's
input is.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from leadflow_attribution.domain.channel_paths import ChannelPath
from leadflow_attribution.domain.journey import NONE_VALUE, Conversion, Touchpoint


@dataclass(frozen=True, slots=True)
class TrainingSet:
    """Paths with counts, and the newest event the fit saw (proto data_through)."""

    paths: tuple[ChannelPath, ...]
    data_through: datetime | None


def training_paths(
    touchpoints_by_subject: Mapping[str, Sequence[Touchpoint]],
    conversions: Iterable[Conversion],
    start: datetime,
    end: datetime,
    lookback: timedelta,
) -> TrainingSet:
    """Paths of the conversions in [start, end) and of the subjects' non-converting tails.

    Each subject's touchpoints must be unique per event id and sorted by (occurred_at,
    event_id), as the repository reads them; `conversion.subject` keys the mapping.
    """
    counts: dict[tuple[str, ...], list[int]] = {}
    times: dict[str, list[datetime]] = {}
    last_conversion: dict[str, datetime] = {}
    newest: datetime | None = None

    def count(channels: tuple[str, ...], converted: bool) -> None:
        entry = counts.get(channels)
        if entry is None:
            counts[channels] = [1, 0] if converted else [0, 1]
        else:
            entry[0 if converted else 1] += 1

    for conversion in conversions:
        at = conversion.occurred_at
        if not start <= at < end:
            continue
        newest = at if newest is None or at > newest else newest
        subject = conversion.subject
        seen = last_conversion.get(subject)
        if seen is None or at > seen:
            last_conversion[subject] = at
        journey = touchpoints_by_subject.get(subject, ())
        moments = times.get(subject)
        if moments is None:
            moments = times[subject] = [t.occurred_at for t in journey]
        first = bisect_left(moments, at - lookback)
        last = bisect_right(moments, at)
        count(tuple(t.channel or NONE_VALUE for t in journey[first:last]), True)

    for subject, journey in touchpoints_by_subject.items():
        if not journey:
            continue
        moments = times.get(subject) or [t.occurred_at for t in journey]
        after = last_conversion.get(subject)
        first = bisect_right(moments, after) if after is not None else bisect_left(moments, start)
        first = max(first, bisect_left(moments, start))
        last = bisect_left(moments, end)
        if first >= last:
            continue
        first = max(first, bisect_left(moments, moments[last - 1] - lookback))
        count(tuple(t.channel or NONE_VALUE for t in journey[first:last]), False)
        tail = moments[last - 1]
        newest = tail if newest is None or tail > newest else newest

    paths = tuple(ChannelPath(channels, c[0], c[1]) for channels, c in counts.items())
    return TrainingSet(paths, newest)
