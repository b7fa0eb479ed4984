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

import numpy as np
import numpy.typing as npt

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


@dataclass(frozen=True, eq=False)
class PathColumns:
    """Paths as columns: path i is channels[offsets[i]:offsets[i + 1]] (codes into
    `channel_names`), with its counts and value. Identical paths need not be merged."""

    channels: npt.NDArray[np.int64]
    offsets: npt.NDArray[np.int64]
    conversions: npt.NDArray[np.int64]
    non_conversions: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    channel_names: tuple[str, ...]

    @property
    def lengths(self) -> npt.NDArray[np.int64]:
        return np.diff(self.offsets)


def path_columns(paths: Iterable[ChannelPath]) -> PathColumns:
    """Columns of `paths`, refusing negative counts and negative or non-finite values."""
    codes: dict[str, int] = {}
    channels: list[int] = []
    offsets = [0]
    conversions: list[int] = []
    failures: list[int] = []
    values: list[float] = []
    for position, path in enumerate(paths):
        if path.conversions < 0 or path.non_conversions < 0:
            raise InvalidInput.of(
                f"paths[{position}].conversions", "INVALID_COUNT", "counts must be >= 0"
            )
        if not 0 <= path.value < math.inf:  # also refuses NaN
            raise InvalidInput.of(
                f"paths[{position}].value", "INVALID_VALUE", "must be finite and >= 0"
            )
        channels.extend(codes.setdefault(channel, len(codes)) for channel in path.channels)
        offsets.append(len(channels))
        conversions.append(path.conversions)
        failures.append(path.non_conversions)
        values.append(path.value)
    return PathColumns(
        channels=np.asarray(channels, dtype=np.int64),
        offsets=np.asarray(offsets, dtype=np.int64),
        conversions=np.asarray(conversions, dtype=np.int64),
        non_conversions=np.asarray(failures, dtype=np.int64),
        values=np.asarray(values, dtype=np.float64),
        channel_names=tuple(codes),
    )


def column_stats(paths: PathColumns) -> PathStats:
    """total_paths' counts, over columns."""
    lengths = paths.lengths
    attributed = lengths > 0
    present = np.zeros(len(paths.channel_names), dtype=bool)
    present[paths.channels] = True  # every row belongs to a non-empty path
    values = paths.values[attributed]
    return PathStats(
        journey_count=int(paths.conversions.sum() + paths.non_conversions.sum()),
        converting_journey_count=int(paths.conversions.sum()),
        channel_count=int(present.sum()),
        unattributed_conversions=int(paths.conversions[~attributed].sum()),
        attributed_conversions=int(paths.conversions[attributed].sum()),
        attributed_value=math.fsum(values[values != 0].tolist()),
    )
