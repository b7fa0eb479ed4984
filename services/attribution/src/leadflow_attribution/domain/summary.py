"""Credit per dimension value (channel, source, medium, campaign, brand), one model at a time
or several side by side (proto Summarize / CompareModels).

Sums are exact decimals: the shares of every conversion sum to exactly 1, so the credited
conversions of all rows sum to exactly the number of conversions; credited values are kept
per currency (never mixed) and sum to exactly each currency's total. Conversions with an
empty journey are credited to "(unattributed)"; touchpoints without a value in the dimension
to "(none)". Rows are ordered by credited conversions, descending, then by dimension value.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Context, Decimal, localcontext

from leadflow_attribution.domain.channel_weights import shares_from_channel_weights
from leadflow_attribution.domain.credit import Credit, allocate, apportion
from leadflow_attribution.domain.errors import InvalidInput
from leadflow_attribution.domain.journey import (
    NONE_VALUE,
    Conversion,
    Touchpoint,
    channel_label,
    channel_path,
)
from leadflow_attribution.domain.models import AttributionModel

UNATTRIBUTED = "(unattributed)"
_EXACT = Context(prec=80)
_ZERO = Decimal(0)
_ONE = Decimal(1)


class Dimension(enum.IntEnum):
    """Numbered as leadflow.attribution.v1.AttributionDimension."""

    CHANNEL = 1
    SOURCE = 2
    MEDIUM = 3
    CAMPAIGN = 4
    BRAND = 5  # the brand the touchpoint was tracked under, not the conversion's


def dimension_value(touchpoint: Touchpoint, dimension: Dimension) -> str:
    """The touchpoint's value in `dimension`; "(none)" when it has none."""
    if dimension is Dimension.CHANNEL:
        return channel_label(touchpoint.channel)
    if dimension is Dimension.SOURCE:
        value = touchpoint.source
    elif dimension is Dimension.MEDIUM:
        value = touchpoint.medium
    elif dimension is Dimension.CAMPAIGN:
        value = touchpoint.campaign
    else:
        value = touchpoint.brand_id
    return value or NONE_VALUE


@dataclass(frozen=True, slots=True)
class Amount:
    """An exact amount of one currency (proto Money)."""

    currency: str
    value: Decimal


@dataclass(frozen=True, slots=True)
class AttributedConversion:
    """A conversion, its journey, and one credit per journey position under one model."""

    conversion: Conversion
    journey: tuple[Touchpoint, ...]
    credits: tuple[Credit, ...]

    def __post_init__(self) -> None:
        if len(self.credits) != len(self.journey):
            raise InvalidInput.of(
                "credits", "LENGTH_MISMATCH", "one credit per journey touchpoint is required"
            )


@dataclass(frozen=True, slots=True)
class DimensionCredit:
    """Credit one dimension value received (proto SummaryRow)."""

    dimension_value: str
    credited_conversions: Decimal
    credited_values: tuple[Amount, ...]  # one per currency, by currency code
    share_of_conversions: float
    conversion_count: int  # distinct conversions that gave it credit > 0
    touchpoint_count: int  # touchpoints with this value in the journeys


@dataclass(frozen=True, slots=True)
class Summary:
    """Credit per dimension value under one model."""

    dimension: Dimension
    rows: tuple[DimensionCredit, ...]
    conversion_count: int
    total_values: tuple[Amount, ...]


@dataclass(slots=True)
class _Tally:
    credited: Decimal = _ZERO
    values: dict[str, Decimal] = field(default_factory=dict)
    conversions: int = 0
    touchpoints: int = 0

    def add_value(self, currency: str, value: Decimal) -> None:
        if currency:
            self.values[currency] = self.values.get(currency, _ZERO) + value


def _amounts(values: Mapping[str, Decimal]) -> tuple[Amount, ...]:
    return tuple(Amount(code, values[code]) for code in sorted(values))


def _finish(
    dimension: Dimension, tallies: Mapping[str, _Tally], count: int, totals: Mapping[str, Decimal]
) -> Summary:
    rows = [
        DimensionCredit(
            dimension_value=label,
            credited_conversions=tally.credited,
            credited_values=_amounts(tally.values),
            share_of_conversions=float(tally.credited / count) if count else 0.0,
            conversion_count=tally.conversions,
            touchpoint_count=tally.touchpoints,
        )
        for label, tally in tallies.items()
    ]
    rows.sort(key=lambda row: (-row.credited_conversions, row.dimension_value))
    return Summary(dimension, tuple(rows), count, _amounts(totals))


def summarize(attributed: Iterable[AttributedConversion], dimension: Dimension) -> Summary:
    """Credit per value of `dimension` over conversions attributed under one model."""
    tallies: dict[str, _Tally] = {}
    totals: dict[str, Decimal] = {}
    count = 0
    with localcontext(_EXACT):
        for item in attributed:
            conversion = item.conversion
            count += 1
            if conversion.currency:
                totals[conversion.currency] = (
                    totals.get(conversion.currency, _ZERO) + conversion.value
                )
            if not item.journey:
                tally = tallies.setdefault(UNATTRIBUTED, _Tally())
                tally.credited += _ONE
                tally.conversions += 1
                tally.add_value(conversion.currency, conversion.value)
                continue
            credited_here: set[str] = set()
            for touchpoint, credit in zip(item.journey, item.credits, strict=True):
                label = dimension_value(touchpoint, dimension)
                tally = tallies.setdefault(label, _Tally())
                tally.touchpoints += 1
                tally.credited += credit.share
                tally.add_value(conversion.currency, credit.value)
                if credit.share > 0 and label not in credited_here:
                    credited_here.add(label)
                    tally.conversions += 1
    return _finish(dimension, tallies, count, totals)


def summarize_channel_weights(
    attributed: Iterable[AttributedConversion],
    weights: Mapping[str, float],
    currency_exponents: Mapping[str, int] | None = None,
) -> Summary:
    """Channel credit of a data-driven model as the proto defines it: the fit's per-channel
    total, i.e. each channel's weight x the attributed conversions (and x each currency's
    value) in the range, apportioned exactly.

    `attributed` supplies the conversions and journeys (its credits are not used). Every
    channel of the fit gets a row, and so does every channel of the range. Should all the
    weights be 0, each conversion is credited per shares_from_channel_weights (linearly).
    `currency_exponents` gives minor units per currency (default: each total's own digits).
    """
    items = list(attributed)
    fitted = {c: w for c, w in weights.items() if w > 0}
    if not fitted:
        return summarize(_reweighted(items, weights, currency_exponents), Dimension.CHANNEL)
    channels = sorted(fitted)
    tallies: dict[str, _Tally] = {c: _Tally() for c in channels}
    totals: dict[str, Decimal] = {}
    attributed_totals: dict[str, Decimal] = {}
    attributed_count = 0
    with localcontext(_EXACT):
        for item in items:
            conversion = item.conversion
            if conversion.currency:
                totals[conversion.currency] = (
                    totals.get(conversion.currency, _ZERO) + conversion.value
                )
            if not item.journey:
                tally = tallies.setdefault(UNATTRIBUTED, _Tally())
                tally.credited += _ONE
                tally.conversions += 1
                tally.add_value(conversion.currency, conversion.value)
                continue
            attributed_count += 1
            if conversion.currency:
                attributed_totals[conversion.currency] = (
                    attributed_totals.get(conversion.currency, _ZERO) + conversion.value
                )
            path = channel_path(item.journey)
            for channel in path:
                tallies.setdefault(channel, _Tally()).touchpoints += 1
            for channel in set(path):
                if channel in fitted:
                    tallies[channel].conversions += 1
        ordered = [fitted[c] for c in channels]
        for channel, credited in zip(
            channels, apportion(ordered, Decimal(attributed_count), 18), strict=True
        ):
            tallies[channel].credited = credited
        for currency, total in attributed_totals.items():
            exponent = (currency_exponents or {}).get(currency, 0)
            for channel, amount in zip(channels, apportion(ordered, total, exponent), strict=True):
                tallies[channel].values[currency] = amount
    return _finish(Dimension.CHANNEL, tallies, len(items), totals)


def _reweighted(
    items: Sequence[AttributedConversion],
    weights: Mapping[str, float],
    currency_exponents: Mapping[str, int] | None,
) -> list[AttributedConversion]:
    exponents = currency_exponents or {}
    return [
        AttributedConversion(
            item.conversion,
            item.journey,
            tuple(
                allocate(
                    shares_from_channel_weights(channel_path(item.journey), weights),
                    item.conversion.value,
                    exponents.get(item.conversion.currency, 0),
                )
            ),
        )
        for item in items
    ]


@dataclass(frozen=True, slots=True)
class ModelCredit:
    """Credit one dimension value received under one model (proto ModelCredit)."""

    model: AttributionModel
    credited_conversions: Decimal
    credited_values: tuple[Amount, ...]
    share_of_conversions: float


@dataclass(frozen=True, slots=True)
class ComparisonRow:
    """One dimension value with one credit per compared model, in model order."""

    dimension_value: str
    credits: tuple[ModelCredit, ...]


@dataclass(frozen=True, slots=True)
class Comparison:
    """Credit per dimension value under several models, side by side."""

    dimension: Dimension
    models: tuple[AttributionModel, ...]
    rows: tuple[ComparisonRow, ...]
    conversion_count: int
    total_values: tuple[Amount, ...]


def compare_summaries(summaries: Mapping[AttributionModel, Summary]) -> Comparison:
    """Side-by-side rows from per-model summaries of the same conversions and dimension.

    Every dimension value any model credits gets a row, with zero credit under the models
    that gave it none. Rows are ordered by the first model's credited conversions,
    descending, then by dimension value.
    """
    if not summaries:
        raise ValueError("compare at least one model")
    models = tuple(summaries)
    first = summaries[models[0]]
    for model in models[1:]:
        other = summaries[model]
        if (other.dimension, other.conversion_count, other.total_values) != (
            first.dimension,
            first.conversion_count,
            first.total_values,
        ):
            raise ValueError(f"{model.name} was summarised over other conversions")
    by_model = {
        model: {row.dimension_value: row for row in summaries[model].rows} for model in models
    }
    labels = sorted(
        {label for rows in by_model.values() for label in rows},
        key=lambda label: (-_credited(by_model[models[0]].get(label)), label),
    )
    rows = tuple(
        ComparisonRow(
            label,
            tuple(_model_credit(model, by_model[model].get(label)) for model in models),
        )
        for label in labels
    )
    return Comparison(first.dimension, models, rows, first.conversion_count, first.total_values)


def compare_models(
    attributed_by_model: Mapping[AttributionModel, Iterable[AttributedConversion]],
    dimension: Dimension,
) -> Comparison:
    """Summarise each model's attributed conversions by `dimension`, side by side."""
    return compare_summaries(
        {model: summarize(items, dimension) for model, items in attributed_by_model.items()}
    )


def _credited(row: DimensionCredit | None) -> Decimal:
    return row.credited_conversions if row is not None else _ZERO


def _model_credit(model: AttributionModel, row: DimensionCredit | None) -> ModelCredit:
    if row is None:
        return ModelCredit(model, _ZERO, (), 0.0)
    return ModelCredit(
        model, row.credited_conversions, row.credited_values, row.share_of_conversions
    )


@dataclass(frozen=True, slots=True)
class LabelTotals:
    """Credit one dimension value received, as a database aggregate delivers it."""

    dimension_value: str
    credited_conversions: Decimal
    credited_values: Mapping[str, Decimal]  # currency -> amount
    conversion_count: int
    touchpoint_count: int


def summary_from_totals(
    dimension: Dimension,
    labels: Iterable[LabelTotals],
    conversion_count: int,
    total_values: Mapping[str, Decimal],
) -> Summary:
    """A Summary from per-label sums (e.g. SQL over stored credits), ordered as summarize."""
    tallies: dict[str, _Tally] = {}
    with localcontext(_EXACT):
        for label in labels:
            tally = tallies.setdefault(label.dimension_value, _Tally())
            tally.credited += label.credited_conversions
            tally.conversions += label.conversion_count
            tally.touchpoints += label.touchpoint_count
            for currency, value in label.credited_values.items():
                tally.add_value(currency, value)
    return _finish(dimension, tallies, conversion_count, dict(total_values))


def merge_summaries(dimension: Dimension, parts: Iterable[Summary]) -> Summary:
    """One Summary of disjoint sets of conversions summarised separately: rows, counts and
    totals added (so merging summarize(A) and summarize(B) gives summarize(A + B))."""
    tallies: dict[str, _Tally] = {}
    totals: dict[str, Decimal] = {}
    count = 0
    with localcontext(_EXACT):
        for part in parts:
            if part.dimension is not dimension:
                raise ValueError("summaries of different dimensions cannot be merged")
            count += part.conversion_count
            for amount in part.total_values:
                totals[amount.currency] = totals.get(amount.currency, _ZERO) + amount.value
            for row in part.rows:
                tally = tallies.setdefault(row.dimension_value, _Tally())
                tally.credited += row.credited_conversions
                tally.conversions += row.conversion_count
                tally.touchpoints += row.touchpoint_count
                for amount in row.credited_values:
                    tally.add_value(amount.currency, amount.value)
    return _finish(dimension, tallies, count, totals)
