"""The six heuristic models (DESIGN.md §3): shares of one conversion per journey position.

Shares are exact `Fraction`s that sum to exactly 1 for any non-empty journey (an empty
journey gets no shares: the conversion is "(unattributed)"). Only time decay starts from
inexact numbers (powers of two of a float exponent); its weights are normalised exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from fractions import Fraction
from functools import lru_cache

from leadflow_attribution.domain.errors import InvalidInput
from leadflow_attribution.domain.journey import (
    DIRECT_CHANNEL,
    Conversion,
    Touchpoint,
    opportunity_index,
)
from leadflow_attribution.domain.models import AttributionModel, AttributionOptions

Shares = tuple[Fraction, ...]

_ZERO = Fraction(0)
_ONE = Fraction(1)
_HALF = Fraction(1, 2)
_U_END = Fraction(2, 5)
_U_MIDDLE = Fraction(1, 5)
_W_KEY = Fraction(3, 10)
_W_OTHERS = Fraction(1, 10)
_THIRD = Fraction(1, 3)


# Position models depend on the length only: their shares are computed once per shape.
@lru_cache(maxsize=1024)
def _one_at(length: int, position: int) -> Shares:
    shares = [_ZERO] * length
    shares[position] = _ONE
    return tuple(shares)


def first_touch(length: int) -> Shares:
    """100% to the first touchpoint."""
    return _one_at(length, 0) if length else ()


def last_touch(journey: Sequence[Touchpoint], ignore_direct: bool = False) -> Shares:
    """100% to the last touchpoint.

    With `ignore_direct`, to the last touchpoint whose channel is not "direct" (compared
    without case); a journey of only direct touchpoints still credits its last one.
    """
    length = len(journey)
    if not length:
        return ()
    if ignore_direct:
        for position in range(length - 1, -1, -1):
            if journey[position].channel.lower() != DIRECT_CHANNEL:
                return _one_at(length, position)
    return _one_at(length, length - 1)


@lru_cache(maxsize=256)
def linear(length: int) -> Shares:
    """1/n to each of the n touchpoints."""
    return (Fraction(1, length),) * length if length else ()


def time_decay(journey: Sequence[Touchpoint], half_life: timedelta) -> Shares:
    """Weight 2^(-(t_conversion - t_i) / half_life), normalised.

    Weights are taken relative to the newest touchpoint: the common factor
    2^(-(t_conversion - t_newest) / half_life) cancels in the normalisation, and the newest
    weight is exactly 1, so no journey underflows to all zeros however old it is.
    """
    if half_life <= timedelta(0):
        raise InvalidInput.of("options.time_decay_half_life", "OUT_OF_RANGE", "must be positive")
    if not journey:
        return ()
    newest = journey[-1].occurred_at
    ratios = [(2.0 ** -((newest - t.occurred_at) / half_life)).as_integer_ratio() for t in journey]
    common = max(denominator for _, denominator in ratios)  # powers of two: this is the lcm
    weights = [numerator * (common // denominator) for numerator, denominator in ratios]
    total = sum(weights)
    return tuple(Fraction(weight, total) for weight in weights)


@lru_cache(maxsize=256)
def u_shaped(length: int) -> Shares:
    """n=1 all; n=2 50/50; n>=3 40% first, 40% last, 20% split evenly over the middle."""
    if length <= 1:
        return (_ONE,) * length
    if length == 2:
        return (_HALF, _HALF)
    middle = _U_MIDDLE / (length - 2)
    return (_U_END, *([middle] * (length - 2)), _U_END)


@lru_cache(maxsize=4096)
def w_shaped(length: int, opportunity: int | None) -> Shares:
    """30% first, 30% opportunity touch, 30% last, 10% split evenly over the others.

    U-shaped when the opportunity touch is missing or coincides with the first or the last;
    with no others (n=3) the 10% goes evenly to the three key touches (1/3 each).
    """
    if opportunity is None or opportunity <= 0 or opportunity >= length - 1:
        return u_shaped(length)
    if length == 3:
        return (_THIRD, _THIRD, _THIRD)
    other = _W_OTHERS / (length - 3)
    shares = [other] * length
    shares[0] = shares[opportunity] = shares[-1] = _W_KEY
    return tuple(shares)


def heuristic_shares(
    model: AttributionModel,
    journey: Sequence[Touchpoint],
    conversion: Conversion,
    options: AttributionOptions,
) -> Shares:
    """Shares of `conversion` per position of `journey` (from build_journey) under `model`."""
    length = len(journey)
    if model is AttributionModel.FIRST_TOUCH:
        return first_touch(length)
    if model is AttributionModel.LAST_TOUCH:
        return last_touch(journey, options.last_touch_ignore_direct)
    if model is AttributionModel.LINEAR:
        return linear(length)
    if model is AttributionModel.TIME_DECAY:
        return time_decay(journey, options.time_decay_half_life)
    if model is AttributionModel.U_SHAPED:
        return u_shaped(length)
    if model is AttributionModel.W_SHAPED:
        anchor = opportunity_index(journey, conversion.opportunity_at, conversion.occurred_at)
        return w_shaped(length, anchor)
    raise ValueError(f"{model.name} is data-driven: use shares_from_channel_weights with a fit")
