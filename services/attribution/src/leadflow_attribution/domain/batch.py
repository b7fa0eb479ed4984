"""Exact credits of many conversions under several models at once, over integer columns.

The same numbers as credit.allocate applied to the models' exact shares (the rule of
credit.py: every share rounded half to even to 1e-18, every value to its unit, the residue
to the largest share, earliest on ties), computed as integer arrays:

* Position models (first, last, linear, U, W) give the same shares to every journey of a
  shape (length, anchor, credited position): their exact shares are computed once per
  distinct shape, and values are apportioned in int64 minor units per conversion.
* Time decay and the fitted models weigh touches by floats (exact dyadic rationals). Share
  i is a_i / (k_i x S): a_i the touch's weight, k_i 1 (time decay) or the number of
  touches of its channel in the journey (fitted models), S the exact sum of the weights.
  The rounded quotients are computed in double-double arithmetic (about 100 bits: S is
  summed exactly in three 36-bit slices), which decides the rounding unless the quotient
  lies within 1e-9 of a half unit; those conversions, and any whose largest share is not
  decided by float comparison, are computed again exactly with Python integers.

A conversion whose value does not fit the vector path (2^53 units or more) is computed
exactly with Python integers throughout. Results are bit-identical to the scalar rule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import repeat
from typing import Any

import numpy as np
import numpy.typing as npt

from leadflow_attribution.domain.channel_weights import channel_weight_numerators
from leadflow_attribution.domain.columns import (
    ConversionColumns,
    TouchColumns,
    gather,
    journey_bounds,
    micros,
    opportunity_anchors,
)
from leadflow_attribution.domain.credit import (
    _SHARE_UNITS,
    SHARE_DIGITS,
    Credit,
    _apportion,
    _decimals,
    _largest,
    _units,
    integer_shares,
)
from leadflow_attribution.domain.currency import currency_exponent
from leadflow_attribution.domain.errors import InvalidInput
from leadflow_attribution.domain.heuristics import linear, u_shaped, w_shaped
from leadflow_attribution.domain.journey import (
    DIRECT_CHANNEL,
    Conversion,
    Touchpoint,
    channel_label,
    opportunity_index,
)
from leadflow_attribution.domain.models import AttributionModel, AttributionOptions

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

_VECTOR_UNITS = 2**53  # values below this many units are exact float64 integers
_INT64_SAFE = 2**62
_MARGIN = 1e-9  # a rounded quotient closer than this to a half unit is recomputed exactly
_SLICE = 36  # bits per slice of the exact weight sums
_MAX_SLICED_TERMS = 2**16  # 2^16 slices of 36 bits sum exactly in a float64
_SPLITTER = 134217729.0  # 2^27 + 1 (Dekker)
_ONE_SHARE = float(_SHARE_UNITS)  # 1e18 is exact in float64
_MICROSECOND_DELTA = timedelta(microseconds=1)
_TABLE_LIMIT = 8_000_000  # journeys x channels for a dense presence table


@dataclass(frozen=True, eq=False)
class JourneyBatch:
    """Journeys of conversions, flat: conversion i's journey is rows offsets[i]:offsets[i+1]
    of `times` (microseconds) and `channels` (codes into `channel_names`), ordered as
    journeys are; `anchors[i]` is its opportunity touch's position (-1: none)."""

    offsets: Ints
    times: Ints
    channels: Ints
    channel_names: tuple[str, ...]
    anchors: Ints
    values: Sequence[Decimal]
    currencies: Sequence[str]

    @property
    def size(self) -> int:
        return int(self.offsets.shape[0]) - 1


@dataclass(eq=False)
class BatchCredits:
    """Credits per model, flat by journey row: `shares` in units of 1e-18, `values` in
    units of 10^-exponents[conversion] (`big_values` holds the few conversions whose value
    units do not fit an int64)."""

    offsets: Ints
    exponents: list[int]
    shares: dict[AttributionModel, Ints]
    values: dict[AttributionModel, Ints]
    big_values: dict[tuple[AttributionModel, int], list[int]] = field(default_factory=dict)

    def credits(self, conversion: int, model: AttributionModel) -> tuple[Credit, ...]:
        """Conversion `conversion`'s credits under `model` as decimals (credit.Credit)."""
        start, end = int(self.offsets[conversion]), int(self.offsets[conversion + 1])
        shares = _decimals(self.shares[model][start:end].tolist(), SHARE_DIGITS)
        parts = self.big_values.get((model, conversion))
        if parts is None:
            parts = self.values[model][start:end].tolist()
        values = _decimals(parts, self.exponents[conversion])
        return tuple(Credit(s, v) for s, v in zip(shares, values, strict=True))


_UNITS: dict[tuple[str, str], tuple[int, int]] = {}


def value_units(value: Decimal, currency: str) -> tuple[int, int]:
    """(units, exponent): `value` = units x 10^-exponent at the currency's minor unit, or
    the value's own precision when finer (credit.allocate's unit)."""
    return _all_value_units([value], [currency])[0]


def _all_value_units(values: Sequence[Decimal], currencies: Sequence[str]) -> list[tuple[int, int]]:
    # Keyed by the text, not the Decimal: 49.0 == 49.00, yet a value's own precision can
    # set the unit (JPY 49.5 is split in tenths). Prices repeat: a few distinct keys.
    keys = list(zip(map(str, values), currencies, strict=True))
    found: list[tuple[int, int] | None] = list(map(_UNITS.get, keys))
    for position in [i for i, f in enumerate(found) if f is None]:
        known = _UNITS.get(keys[position])
        if known is None:
            value, currency = values[position], currencies[position]
            if not value.is_finite() or value < 0:
                raise InvalidInput.of("value.units", "INVALID_VALUE", "must be finite and >= 0")
            known = _units(value, currency_exponent(currency) if currency else 0)
            if len(_UNITS) >= 65_536:
                _UNITS.clear()
            _UNITS[keys[position]] = known
        found[position] = known
    return found  # type: ignore[return-value]


# Double-double arithmetic (error-free transformations; numpy has no FMA) ----------------


def _two_sum(a: Floats, b: Floats) -> tuple[Floats, Floats]:
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _split(a: Floats | float) -> tuple[Any, Any]:
    c = _SPLITTER * a
    high = c - (c - a)
    return high, a - high


def _two_prod(a: Floats, b: Floats | float) -> tuple[Floats, Floats]:
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


class _Divisor:
    """A double-double divisor (high + low), split once for every quotient by it."""

    def __init__(self, high: Floats, low: Floats) -> None:
        self.high, self.low = high, low
        self.parts = _split(high)

    def rounded(
        self, numerators: Floats, parts: tuple[Floats, Floats], scale: Floats | float
    ) -> tuple[Ints, Bools]:
        """round_half_even(numerators x scale / divisor) as int64, and where that rounding
        is too close to call in double-double precision. `parts`: _split(numerators)."""
        n_high = numerators * scale
        sh, sl = _split(scale)
        nh, nl = parts
        n_low = ((nh * sh - n_high) + nh * sl + nl * sh) + nl * sl
        q1 = n_high / self.high
        p = q1 * self.high
        qh, ql = _split(q1)
        dh, dl = self.parts
        p_err = ((qh * dh - p) + qh * dl + ql * dh) + ql * dl
        q2 = (((n_high - p) - p_err) + n_low - q1 * self.low) / self.high
        whole = np.floor(q1)
        rest = (q1 - whole) + q2
        step = np.floor(rest)
        fraction = rest - step
        rounded = whole.astype(np.int64) + step.astype(np.int64) + (fraction > 0.5)
        return rounded, np.abs(fraction - 0.5) < _MARGIN


def _exact_sums(terms: Floats, starts: Ints) -> tuple[Floats, Floats, Bools]:
    """Sum of each segment of non-negative `terms` (segments begin at `starts`, none empty)
    as a double-double, relative error about 2^-104; flags segments it cannot do
    (too many terms, weights near the bottom of the float range, or all zero)."""
    largest = np.maximum.reduceat(terms, starts)
    _, exponent = np.frexp(largest)
    exponent = exponent.astype(np.int64)
    lengths = np.diff(np.append(starts, terms.shape[0]))
    per_row = np.repeat(exponent, lengths)
    scaled = np.ldexp(terms, (_SLICE - per_row).astype(np.int32))
    high = np.floor(scaled)
    rest = np.ldexp(scaled - high, _SLICE)
    middle = np.floor(rest)
    low = rest - middle
    high_sum = np.add.reduceat(high, starts)
    middle_sum = np.ldexp(np.add.reduceat(middle, starts), -_SLICE)
    low_sum = np.ldexp(np.add.reduceat(low, starts), -2 * _SLICE)
    t_high, t_low = _two_sum(middle_sum, low_sum)
    s_high, s_err = _two_sum(high_sum, t_high)
    s_low = s_err + t_low
    s_high, s_low = _two_sum(s_high, s_low)
    shift = (exponent - _SLICE).astype(np.int32)
    unusable = (lengths > _MAX_SLICED_TERMS) | (exponent < -900) | (largest <= 0)
    return np.ldexp(s_high, shift), np.ldexp(s_low, shift), unusable


# The batch ------------------------------------------------------------------------------


@dataclass(eq=False)
class _Rows:
    """Row bookkeeping over the conversions with a non-empty journey."""

    batch: JourneyBatch
    lengths: Ints
    live: Ints  # conversions with a journey
    starts: Ints  # their first rows
    owner: Ints  # row -> index into live
    position: Ints  # row -> position in its journey
    units: Ints  # per live conversion (0 where `slow`)
    unit_floats: Floats
    slow: Bools  # per live conversion: value too large for the vector path
    row_units: Ints  # units of each row's conversion
    row_unit_floats: Floats
    _channel_counts: tuple[Ints, Floats | None, Ints] | None = None

    @classmethod
    def of(cls, batch: JourneyBatch, units: list[int]) -> _Rows:
        lengths = np.diff(batch.offsets)
        live = np.flatnonzero(lengths > 0)
        live_lengths = lengths[live]
        owner = np.repeat(np.arange(live.shape[0], dtype=np.int64), live_lengths)
        starts = batch.offsets[live]
        position = np.arange(batch.offsets[-1], dtype=np.int64) - starts[owner]
        try:
            every = np.asarray(units, dtype=np.int64)
        except OverflowError:  # some value beyond int64 units: those go the exact way
            every = np.asarray([min(u, _VECTOR_UNITS) for u in units], dtype=np.int64)
        slow = every[live] >= _VECTOR_UNITS
        vector_units = np.where(slow, 0, every[live])
        row_units = vector_units[owner]
        return cls(
            batch=batch,
            lengths=live_lengths,
            live=live,
            starts=starts,
            owner=owner,
            position=position,
            units=vector_units,
            unit_floats=vector_units.astype(np.float64),
            slow=slow,
            row_units=row_units,
            row_unit_floats=row_units.astype(np.float64),
        )

    def channel_counts(self) -> tuple[Ints, Floats | None, Ints]:
        """Per row, how many touches of its channel its journey has; and which channels
        each journey shows: a (journeys x channels) presence table, flattened, when small
        enough (else None, and the rows that first show each channel of a journey)."""
        if self._channel_counts is None:
            width = max(len(self.batch.channel_names), 1)
            pair = self.owner * width + self.batch.channels
            if self.live.shape[0] * width <= _TABLE_LIMIT:
                table = np.bincount(pair, minlength=self.live.shape[0] * width)
                present = (table > 0).astype(np.float64)
                self._channel_counts = (table[pair], present, pair[:0])
            else:
                order = np.argsort(pair, kind="stable")
                sorted_pair = pair[order]
                fresh = np.ones(sorted_pair.shape, dtype=bool)
                fresh[1:] = sorted_pair[1:] != sorted_pair[:-1]
                group = np.cumsum(fresh) - 1
                counts = np.empty_like(pair)
                counts[order] = np.bincount(group)[group]
                self._channel_counts = (counts, None, np.sort(order[fresh]))
        return self._channel_counts

    def segment_sum(self, values: Ints) -> Ints:
        return np.add.reduceat(values, self.starts) if self.starts.size else values[:0]


def _settle_residue(rows: _Rows, parts: Ints, totals: Ints, largest_rows: Ints) -> Bools:
    """Add each conversion's rounding residue (totals - sum of its parts) to the part at
    row `largest_rows`; returns where the residue is negative and larger than that part
    (the scalar rule then takes from the next largest shares: recomputed exactly)."""
    residue = totals - rows.segment_sum(parts)
    taken = parts[largest_rows] + residue
    fits = taken >= 0
    parts[largest_rows[fits]] = taken[fits]
    return ~fits


def _round_half_even(scaled: Ints, divisor: Ints) -> Ints:
    quotient, remainder = np.divmod(scaled, divisor)
    twice = 2 * remainder
    quotient += (twice > divisor) | ((twice == divisor) & (quotient % 2 == 1))
    return quotient


@dataclass(frozen=True, eq=False)
class _Result:
    shares: Ints
    values: Ints
    redo: Bools  # per live conversion: recompute exactly


def _one_at(rows: _Rows, credited: Ints) -> _Result:
    """All credit to position `credited` of each journey (first and last touch)."""
    hit = rows.position == credited[rows.owner]
    shares = np.where(hit, _SHARE_UNITS, 0).astype(np.int64)
    values = np.where(hit, rows.row_units, 0).astype(np.int64)
    return _Result(shares, values, rows.slow)


class _SharesOf:
    """Exact shares of a position model for a shape key (length << 32 | anchor + 1)."""

    def __init__(self, model: AttributionModel) -> None:
        self.model = model

    def __call__(self, shape: int) -> tuple[Fraction, ...]:
        length, anchor = shape >> 32, (shape & 0xFFFFFFFF) - 1
        if self.model is AttributionModel.LINEAR:
            return linear(length)
        if self.model is AttributionModel.U_SHAPED:
            return u_shaped(length)
        return w_shaped(length, anchor if anchor >= 0 else None)


class _ShapeTables:
    """A position model's exact shares per shape (integer numerators over their sum, and
    the rounded shares), computed once per process (bounded)."""

    def __init__(self, shares_of: _SharesOf) -> None:
        self._shares_of = shares_of
        self._cache: dict[int, tuple[list[int], list[int], int, int]] = {}

    def one(self, shape: int) -> tuple[list[int], list[int], int, int]:
        """(numerators, share units, total, position of the largest share)."""
        found = self._cache.get(shape)
        if found is None:
            numerators, total = integer_shares(self._shares_of(shape))
            largest = _largest(numerators)
            found = (numerators, _apportion(numerators, total, _SHARE_UNITS, largest), total,
                     largest)  # fmt: skip
            if len(self._cache) >= 100_000:
                self._cache.clear()
            self._cache[shape] = found
        return found

    def build(self, shapes: list[int]) -> tuple[Ints, Ints, Ints, Ints, Ints, Ints]:
        """Flat tables for `shapes`: offsets, numerators, share units, totals, largest
        position and largest numerator per shape."""
        offsets: list[int] = []
        numerators: list[int] = []
        parts: list[int] = []
        totals: list[int] = []
        largest: list[int] = []
        widest: list[int] = []
        for shape in shapes:
            n, p, total, big = self.one(shape)
            offsets.append(len(numerators))
            numerators.extend(n)
            parts.extend(p)
            totals.append(total)
            largest.append(big)
            widest.append(max(n))
        return tuple(  # type: ignore[return-value]
            np.asarray(x, dtype=np.int64)
            for x in (offsets, numerators, parts, totals, largest, widest)
        )


_TABLES = {
    model: _ShapeTables(_SharesOf(model))
    for model in (AttributionModel.LINEAR, AttributionModel.U_SHAPED, AttributionModel.W_SHAPED)
}


def _position_model(rows: _Rows, key: Ints, table: _ShapeTables) -> _Result:
    """A model whose shares depend only on a small integer key per conversion (its shape:
    length and anchor): exact shares per distinct shape, values in int64 units."""
    shapes, inverse = np.unique(key, return_inverse=True)
    offsets, numerators, shares, totals, largest, widest = table.build(shapes.tolist())
    gather_at = offsets[inverse][rows.owner] + rows.position
    # units x numerator must stay below 2^62 for int64 arithmetic
    overflow = rows.unit_floats * widest[inverse].astype(np.float64) >= _INT64_SAFE
    units = np.where(overflow, 0, rows.units)
    values = _round_half_even(
        units[rows.owner] * numerators[gather_at], totals[inverse][rows.owner]
    )
    negative = _settle_residue(rows, values, units, rows.starts + largest[inverse])
    return _Result(shares[gather_at], values, overflow | rows.slow | negative)


def _weighted_model(
    rows: _Rows, weights: Floats, counts: Ints, terms: Floats, term_starts: Ints, exact_keys: bool
) -> _Result:
    """Share of row i = weights[i] / (counts[i] x S), S the sum of each journey's `terms`
    (journey j's terms begin at term_starts[j]). `exact_keys`: weights / counts compare
    exactly as floats (counts all 1)."""
    s_high, s_low, unusable = _exact_sums(terms, term_starts)
    count_f = counts.astype(np.float64)
    d_high, d_err = _two_prod(s_high[rows.owner], count_f)
    d_low = d_err + s_low[rows.owner] * count_f
    d_high, d_low = _two_sum(d_high, d_low)
    d_high = np.where(d_high > 0, d_high, 1.0)  # unusable journeys: redone exactly
    divisor = _Divisor(d_high, d_low)
    weight_parts = _split(weights)
    shares, share_unsure = divisor.rounded(weights, weight_parts, _ONE_SHARE)
    values, value_unsure = divisor.rounded(weights, weight_parts, rows.row_unit_floats)
    # The residue goes to the largest share, earliest on ties.
    keys = weights if exact_keys else weights / count_f
    top = np.maximum.reduceat(keys, rows.starts)
    top_rows = top[rows.owner]
    candidate = keys >= (top_rows if exact_keys else top_rows * (1 - 1e-12))
    row_ids = np.arange(keys.shape[0], dtype=np.int64)
    largest_rows = np.minimum.reduceat(np.where(candidate, row_ids, keys.shape[0]), rows.starts)
    first_weight = weights[largest_rows][rows.owner]
    first_count = counts[largest_rows][rows.owner]
    unclear = candidate & ((weights != first_weight) | (counts != first_count))
    unsure = (share_unsure | value_unsure | unclear).astype(np.int64)
    redo = unusable | rows.slow | (rows.segment_sum(unsure) > 0)
    _settle_residue(rows, shares, np.full(rows.live.shape, _SHARE_UNITS, np.int64), largest_rows)
    negative = _settle_residue(rows, values, rows.units, largest_rows)
    return _Result(shares, values, redo | negative)


def _decay_weights(rows: _Rows, half_life_us: int) -> Floats:
    """2^(-(t_newest - t_i) / half_life) per row, exactly as heuristics.time_decay (the
    quotient of integer microseconds is correctly rounded, the power is Python's)."""
    newest = rows.batch.times[rows.starts + rows.lengths - 1][rows.owner]
    exponents = (rows.batch.times - newest).astype(np.float64) / float(half_life_us)
    powers = map(math.pow, repeat(2.0, exponents.shape[0]), exponents.tolist())
    return np.fromiter(powers, np.float64, exponents.shape[0])


def _fitted_weights(rows: _Rows, weights: Mapping[str, float]) -> tuple[Floats, Ints, Floats, Ints]:
    """Per row its channel's weight (invalid and unknown weights are 0) and the number of
    touches of its channel in the journey; the terms of each journey's weight sum (each
    channel it shows once) and where each journey's terms begin."""
    per_code = np.array(
        [_usable(weights.get(name, 0.0)) for name in rows.batch.channel_names] or [0.0],
        dtype=np.float64,
    )
    counts, present, first_rows = rows.channel_counts()
    if present is not None:
        width = per_code.shape[0]
        terms = (present.reshape(-1, width) * per_code).reshape(-1)
        term_starts = np.arange(rows.live.shape[0], dtype=np.int64) * width
    else:
        terms = per_code[rows.batch.channels[first_rows]]
        term_starts = np.flatnonzero(np.diff(rows.owner[first_rows], prepend=-1))
    return per_code[rows.batch.channels], counts, terms, term_starts


def _usable(weight: float) -> float:
    return weight if math.isfinite(weight) and weight > 0 else 0.0


# Exact recomputation of one conversion (Python integers) --------------------------------


def _exact_numerators(
    model: AttributionModel,
    batch: JourneyBatch,
    conversion: int,
    options: AttributionOptions,
    weights: Mapping[str, float] | None,
) -> list[int]:
    start, end = int(batch.offsets[conversion]), int(batch.offsets[conversion + 1])
    length = end - start
    if model is AttributionModel.FIRST_TOUCH:
        return [1] + [0] * (length - 1)
    if model is AttributionModel.LAST_TOUCH:
        credited = length - 1
        if options.last_touch_ignore_direct:
            names = [batch.channel_names[c] for c in batch.channels[start:end].tolist()]
            plain = [i for i, name in enumerate(names) if name.lower() != DIRECT_CHANNEL]
            credited = plain[-1] if plain else credited
        return [int(i == credited) for i in range(length)]
    if model is AttributionModel.TIME_DECAY:
        times = batch.times[start:end].tolist()
        half_life = options.time_decay_half_life // _MICROSECOND_DELTA
        ratios = [(2.0 ** -((times[-1] - t) / half_life)).as_integer_ratio() for t in times]
        common = max(d for _, d in ratios)
        return [n * (common // d) for n, d in ratios]
    if model.data_driven:
        names = [batch.channel_names[c] for c in batch.channels[start:end].tolist()]
        return channel_weight_numerators(names, weights or {})
    anchor = int(batch.anchors[conversion])
    key = (length << 32) | (anchor + 1 if model is AttributionModel.W_SHAPED else 0)
    return _TABLES[model].one(key)[0]


def _exact(numerators: list[int], units: int) -> tuple[list[int], list[int]]:
    total = sum(numerators)
    largest = _largest(numerators)
    return (
        _apportion(numerators, total, _SHARE_UNITS, largest),
        _apportion(numerators, total, units, largest),
    )


# Entry points -----------------------------------------------------------------------------


def credit_batch(
    batch: JourneyBatch,
    options: AttributionOptions,
    models: Sequence[AttributionModel],
    channel_weights: Mapping[AttributionModel, Mapping[str, float]] | None = None,
) -> BatchCredits:
    """Exact credits of every conversion of `batch` under each of `models` (a data-driven
    model needs its fit's channel weights)."""
    if options.time_decay_half_life <= timedelta(0):
        raise InvalidInput.of("options.time_decay_half_life", "OUT_OF_RANGE", "must be positive")
    fitted = channel_weights or {}
    for model in models:
        if model.data_driven and model not in fitted:
            raise ValueError(f"{model.name} needs the channel weights of a fit")
    units_and_exponents = _all_value_units(batch.values, batch.currencies)
    units = [u for u, _ in units_and_exponents]
    rows = _Rows.of(batch, units)
    out = BatchCredits(
        offsets=batch.offsets,
        exponents=[e for _, e in units_and_exponents],
        shares={},
        values={},
    )
    length_key = rows.lengths << 32
    linear_result: _Result | None = None
    for model in models:
        if model is AttributionModel.FIRST_TOUCH:
            result = _one_at(rows, np.zeros_like(rows.lengths))
        elif model is AttributionModel.LAST_TOUCH:
            result = _one_at(rows, _last_credited(rows, options.last_touch_ignore_direct))
        elif model is AttributionModel.W_SHAPED:
            anchors = batch.anchors[rows.live]
            result = _position_model(rows, length_key | (anchors + 1), _TABLES[model])
        elif model is AttributionModel.LINEAR:
            result = linear_result = _position_model(rows, length_key, _TABLES[model])
        elif model is AttributionModel.U_SHAPED:
            result = _position_model(rows, length_key, _TABLES[model])
        elif model is AttributionModel.TIME_DECAY:
            half_life = options.time_decay_half_life // _MICROSECOND_DELTA
            decay = _decay_weights(rows, half_life)
            ones = np.ones(decay.shape[0], dtype=np.int64)
            result = _weighted_model(rows, decay, ones, decay, rows.starts, True)
        else:
            weights, counts, terms, term_starts = _fitted_weights(rows, fitted[model])
            result = _weighted_model(rows, weights, counts, terms, term_starts, False)
            # A journey of one channel is credited linearly, whatever the channel's weight:
            # exact from the linear table (its half-unit ties are common).
            single = counts[rows.starts] == rows.lengths
            if single.any():
                if linear_result is None:
                    linear_result = _position_model(
                        rows, length_key, _TABLES[AttributionModel.LINEAR]
                    )
                take = single[rows.owner]
                result.shares[take] = linear_result.shares[take]
                result.values[take] = linear_result.values[take]
                result = _Result(
                    result.shares,
                    result.values,
                    np.where(single, linear_result.redo, result.redo),
                )
        out.shares[model], out.values[model] = result.shares, result.values
        for index in np.flatnonzero(result.redo).tolist():
            conversion = int(rows.live[index])
            numerators = _exact_numerators(model, batch, conversion, options, fitted.get(model))
            shares, parts = _exact(numerators, units[conversion])
            start, end = int(batch.offsets[conversion]), int(batch.offsets[conversion + 1])
            out.shares[model][start:end] = shares
            if units[conversion] < _INT64_SAFE:
                out.values[model][start:end] = parts
            else:
                out.big_values[(model, conversion)] = parts
    return out


def _last_credited(rows: _Rows, ignore_direct: bool) -> Ints:
    last = rows.lengths - 1
    if not ignore_direct:
        return last
    direct = np.array(
        [name.lower() == DIRECT_CHANNEL for name in rows.batch.channel_names] or [False]
    )
    plain = np.where(direct[rows.batch.channels], -1, rows.position)
    found = np.maximum.reduceat(plain, rows.starts) if rows.starts.size else last
    return np.where(found >= 0, found, last)


def journeys_from_columns(
    touches: TouchColumns, conversions: ConversionColumns, lookback: timedelta
) -> tuple[JourneyBatch, Ints]:
    """The journeys of `conversions` over `touches` (each subject's touchpoints inside the
    lookback window, both ends inclusive), and the touch row of every journey row."""
    start, end = journey_bounds(touches, conversions, lookback // _MICROSECOND_DELTA)
    rows, offsets = gather(start, end)
    batch = JourneyBatch(
        offsets=offsets,
        times=touches.times[rows],
        channels=touches.channels[rows],
        channel_names=touches.channel_names,
        anchors=opportunity_anchors(touches, conversions, start, end),
        values=conversions.values,
        currencies=conversions.currencies,
    )
    return batch, rows


def journeys_batch(
    journeys: Sequence[Sequence[Touchpoint]], conversions: Sequence[Conversion]
) -> JourneyBatch:
    """A batch of journeys already built (journey.build_journey), one per conversion."""
    codes: dict[str, int] = {}
    offsets = [0]
    times: list[int] = []
    channels: list[int] = []
    anchors: list[int] = []
    for journey, conversion in zip(journeys, conversions, strict=True):
        times.extend(micros(t.occurred_at) for t in journey)
        channels.extend(codes.setdefault(channel_label(t.channel), len(codes)) for t in journey)
        offsets.append(len(times))
        anchor = opportunity_index(journey, conversion.opportunity_at, conversion.occurred_at)
        anchors.append(-1 if anchor is None else anchor)
    return JourneyBatch(
        offsets=np.asarray(offsets, dtype=np.int64),
        times=np.asarray(times, dtype=np.int64),
        channels=np.asarray(channels, dtype=np.int64),
        channel_names=tuple(codes),
        anchors=np.asarray(anchors, dtype=np.int64),
        values=[c.value for c in conversions],
        currencies=[c.currency for c in conversions],
    )
