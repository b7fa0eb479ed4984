"""ISO 4217 minor units: credited values are exact to the currency's smallest unit."""

from __future__ import annotations

from functools import lru_cache

import iso4217


@lru_cache(maxsize=512)
def currency_exponent(code: str) -> int:
    """Minor-unit digits of `code` (USD 2, JPY 0, KWD 3). Codes without minor units (gold,
    fund codes) and unknown codes get 0: the amount is then split at its own precision."""
    try:
        exponent = iso4217.Currency(code).exponent
    except ValueError:
        return 0
    return exponent if isinstance(exponent, int) else 0
