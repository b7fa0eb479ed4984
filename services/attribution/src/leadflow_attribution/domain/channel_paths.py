"""Channel paths: what the data-driven models learn from.

A path is the channel sequence of one journey (journey.channel_path) and how it ended. The
fitting job passes converting journeys (one per conversion) and non-converting ones (a
subject's touchpoints in the training range that led to no conversion); identical paths may
be passed once with counts, as ChannelAttribution's input does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from leadflow_attribution.domain.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class ChannelPath:
    """`conversions` journeys with these channels converted, `non_conversions` did not.

    `value` is the summed value of those conversions, in one currency (fit once per
    currency, or apply the fitted weights to each currency's values: proto
    AttributionModel.SHAPLEY); 0 when values are not used.
    """

    channels: tuple[str, ...]
    conversions: int = 0
    non_conversions: int = 0
    value: float = 0.0


@dataclass(frozen=True, slots=True)
class PathStats:
    """Counts describing the data a fit used (proto DataDrivenFit)."""

    journey_count: int
    converting_journey_count: int
    channel_count: int
    # Conversions whose journey had no touchpoint: in no fit, booked as "(unattributed)".
    unattributed_conversions: int
    # Conversions and value of the journeys the fit credits (non-empty paths).
    attributed_conversions: int
    attributed_value: float


# channels -> [conversions, non-conversions, value]
PathTotals = dict[tuple[str, ...], list[float]]


def total_paths(paths: Iterable[ChannelPath]) -> tuple[PathTotals, PathStats]:
    """Identical channel sequences merged (dict counting), plus the fit's counts."""
    totals: PathTotals = {}
    journeys = converting = unattributed = 0
    for position, path in enumerate(paths):
        conversions, failures, value = path.conversions, path.non_conversions, path.value
        if conversions < 0 or failures < 0:
            raise InvalidInput.of(
                f"paths[{position}].conversions", "INVALID_COUNT", "counts must be >= 0"
            )
        if not 0 <= value < math.inf:  # also refuses NaN
            raise InvalidInput.of(
                f"paths[{position}].value", "INVALID_VALUE", "must be finite and >= 0"
            )
        journeys += conversions + failures
        converting += conversions
        if not path.channels:
            unattributed += conversions
            continue
        entry = totals.get(path.channels)
        if entry is None:
            totals[path.channels] = [conversions, failures, value]
        else:
            entry[0] += conversions
            entry[1] += failures
            entry[2] += value
    channels = {channel for key in totals for channel in key}
    attributed = sum(int(entry[0]) for entry in totals.values())
    attributed_value = math.fsum(entry[2] for entry in totals.values())
    stats = PathStats(
        journey_count=journeys,
        converting_journey_count=converting,
        channel_count=len(channels),
        unattributed_conversions=unattributed,
        attributed_conversions=attributed,
        attributed_value=attributed_value,
    )
    return totals, stats
