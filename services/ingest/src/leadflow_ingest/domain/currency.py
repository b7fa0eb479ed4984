"""ISO 4217 currency codes and exact money amounts (leadflow.common.v1.Money)."""

from __future__ import annotations

import iso4217

from leadflow_ingest.domain.model import Money, Violation, ViolationCode

# Every code of the library's current ISO 4217 table (fund codes and metals included), read
# once at import: a set lookup per event instead of an enum construction that raises.
CURRENCY_CODES: frozenset[str] = frozenset(currency.code for currency in iso4217.Currency)

MAX_NANOS = 999_999_999
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def is_currency(code: str) -> bool:
    """True for an upper-case ISO 4217 code such as "USD" (not "usd", not "XYZ")."""
    return code in CURRENCY_CODES


def validate_money(money: Money, field: str = "value") -> list[Violation]:
    """Violations of one amount, with paths under `field` (e.g. "value.nanos").

    Rules: units is an int64; nanos in -999,999,999..999,999,999 with the sign of units
    (either may be zero); currency_code, when given, a known ISO 4217 code, and required
    when the amount is not zero. Negative amounts (refunds) are valid.
    """
    out: list[Violation] = []
    units, nanos, code = money.units, money.nanos, money.currency_code
    if not INT64_MIN <= units <= INT64_MAX:
        out.append(
            Violation(f"{field}.units", ViolationCode.INVALID_AMOUNT, "units is not an int64")
        )
    if not -MAX_NANOS <= nanos <= MAX_NANOS:
        out.append(
            Violation(
                f"{field}.nanos",
                ViolationCode.INVALID_AMOUNT,
                f"nanos is {nanos}, it must be within -999999999..999999999",
            )
        )
    elif (units > 0 and nanos < 0) or (units < 0 and nanos > 0):
        out.append(
            Violation(
                f"{field}.nanos",
                ViolationCode.INVALID_AMOUNT,
                f"nanos ({nanos}) and units ({units}) have different signs",
            )
        )
    if code:
        if code not in CURRENCY_CODES:
            hint = " (codes are upper case)" if code.upper() in CURRENCY_CODES else ""
            out.append(
                Violation(
                    f"{field}.currency_code",
                    ViolationCode.INVALID_CURRENCY,
                    f"{code[:20]!r} is not a known ISO 4217 currency code{hint}",
                )
            )
    elif units != 0 or nanos != 0:
        out.append(
            Violation(
                f"{field}.currency_code",
                ViolationCode.INVALID_CURRENCY,
                "currency_code is required when an amount is set",
            )
        )
    return out
