"""Exact credit: decimal shares that sum to 1 and values that sum to the conversion value.

Each share and value is rounded to the nearest unit (1e-18 for shares; the currency's minor
unit, or finer when the value itself is finer, for values), half to even; the rounding
residue then goes to the touchpoint with the largest share, earliest on ties (proto
TouchpointCredit.share_decimal). Should the residue be negative and larger than that
touchpoint's amount, the rest is taken from the next largest shares in the same order, so
no credit is ever negative.

Shares arrive as Fractions (heuristics) or floats (fitted weights); both are exact
rationals, so the arithmetic is done on integers over their common denominator: exact, and
far cheaper than Fraction arithmetic on this hot path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Context, Decimal
from fractions import Fraction
from functools import lru_cache
from typing import NamedTuple

from leadflow_attribution.domain.errors import InvalidInput

SHARE_DIGITS = 18
_SHARE_UNITS = 10**SHARE_DIGITS
MAX_CURRENCY_EXPONENT = 9
# Wide enough that scaling a Money amount (int64 units + 9 nano digits) never rounds.
_EXACT = Context(prec=60)


class Credit(NamedTuple):
    """One touchpoint's credit (a named tuple: built once per touchpoint and model on the
    hot path, where a frozen dataclass costs several times more).

    `share` has exactly 18 fractional digits (write it with `format(share, "f")`); `value`
    is in the conversion's currency, quantised to the unit the allocation used.
    """

    share: Decimal
    value: Decimal


def _ratio(position: int, share: float | Fraction) -> tuple[int, int]:
    try:
        numerator, denominator = share.as_integer_ratio()
    except (ValueError, OverflowError):  # NaN, infinity
        raise InvalidInput.of(f"shares[{position}]", "INVALID_SHARE", "must be finite") from None
    if numerator < 0:
        raise InvalidInput.of(f"shares[{position}]", "INVALID_SHARE", "must not be negative")
    return numerator, denominator


def integer_shares(shares: Sequence[float | Fraction]) -> tuple[list[int], int]:
    """Shares as integer numerators over their sum: share i is numerators[i] / total.

    Refuses negative, NaN and infinite shares, and all-zero ones.
    """
    ratios = [_ratio(position, share) for position, share in enumerate(shares)]
    if not ratios:
        return [], 0
    common = math.lcm(*(denominator for _, denominator in ratios))
    numerators = [n * (common // d) for n, d in ratios]
    total = sum(numerators)
    if not total:
        raise InvalidInput.of("shares", "INVALID_SHARE", "at least one share must be positive")
    return numerators, total


def _apportion(numerators: Sequence[int], total: int, units: int, largest: int) -> list[int]:
    parts: list[int] = []
    for numerator in numerators:
        if not numerator:
            parts.append(0)
            continue
        part, rest = divmod(numerator * units, total)
        rest *= 2
        if rest > total or (rest == total and part & 1):  # nearest, half to even
            part += 1
        parts.append(part)
    residue = units - sum(parts)
    if residue >= 0:
        parts[largest] += residue
        return parts
    for position in sorted(range(len(parts)), key=lambda i: (-numerators[i], i)):
        taken = min(parts[position], -residue)
        parts[position] -= taken
        residue += taken
        if not residue:
            break
    return parts


def value_exponent(value: Decimal, minimum: int) -> int:
    """Fractional digits an apportioned amount carries: `minimum`, or the amount's if finer."""
    digits = value.as_tuple().exponent
    own = -digits if isinstance(digits, int) else 0
    return max(minimum, own)


def _units(value: Decimal, exponent: int) -> tuple[int, int]:
    """`value` in units of 10^-exponent, refining the exponent when the value is finer."""
    scaled = value.scaleb(exponent, _EXACT)
    whole = scaled.to_integral_value()
    if whole != scaled:
        exponent = value_exponent(value, exponent)
        whole = value.scaleb(exponent, _EXACT)
    return int(whole), exponent


@lru_cache(maxsize=4096)
def _share_decimals(numerators: tuple[int, ...], total: int, largest: int) -> tuple[Decimal, ...]:
    # Position models repeat the same shares for every journey of a length: cached.
    return tuple(_decimals(_apportion(numerators, total, _SHARE_UNITS, largest), SHARE_DIGITS))


def _largest(numerators: Sequence[int]) -> int:
    return max(range(len(numerators)), key=numerators.__getitem__)  # first maximum: earliest


def _decimals(parts: Sequence[int], exponent: int) -> list[Decimal]:
    return [Decimal(part).scaleb(-exponent, _EXACT) for part in parts]


def apportion(weights: Sequence[float | Fraction], total: Decimal, exponent: int) -> list[Decimal]:
    """`total` split in proportion to `weights`, exactly, at `exponent` fractional digits
    (or the total's own, if finer), with the residue rule of this module."""
    if not 0 <= exponent <= SHARE_DIGITS:
        raise InvalidInput.of("exponent", "OUT_OF_RANGE", f"must be 0 to {SHARE_DIGITS}")
    if not total.is_finite() or total < 0:
        raise InvalidInput.of("total", "INVALID_VALUE", "must be finite and >= 0")
    numerators, whole = integer_shares(weights)
    if not numerators:
        return []
    units, exponent = _units(total, exponent)
    return _decimals(_apportion(numerators, whole, units, _largest(numerators)), exponent)


def allocate(
    shares: Sequence[float | Fraction], value: Decimal, currency_exponent: int
) -> list[Credit]:
    """Credits of one conversion, one per share (i.e. per journey position).

    `shares` need not be normalised (time decay, fitted weights): they are normalised
    exactly, so the decimal shares sum to exactly 1 and the values to exactly `value`.
    `currency_exponent` is the currency's minor unit (USD 2, JPY 0, KWD 3); a value with
    more fractional digits than that is split at its own precision so the sum stays exact.
    An empty journey gets no credits (the caller books it as "(unattributed)").
    """
    if not 0 <= currency_exponent <= MAX_CURRENCY_EXPONENT:
        raise InvalidInput.of(
            "currency_exponent", "OUT_OF_RANGE", f"must be 0 to {MAX_CURRENCY_EXPONENT}"
        )
    if not value.is_finite() or value < 0:
        raise InvalidInput.of("value.units", "INVALID_VALUE", "must be finite and >= 0")
    numerators, total = integer_shares(shares)
    return allocate_numerators(numerators, total, value, currency_exponent)


def allocate_numerators(
    numerators: Sequence[int], total: int, value: Decimal, currency_exponent: int
) -> list[Credit]:
    """allocate() for shares given as integer numerators over their sum `total` (all >= 0,
    total > 0): the same credits, rounding and residue rule."""
    if not numerators:
        return []
    largest = _largest(numerators)
    units, exponent = _units(value, currency_exponent)
    shares_exact = _share_decimals(tuple(numerators), total, largest)
    values = _decimals(_apportion(numerators, total, units, largest), exponent)
    return [Credit(share, amount) for share, amount in zip(shares_exact, values, strict=True)]
