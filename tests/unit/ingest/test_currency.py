"""ISO 4217 codes and exact money amounts."""

from __future__ import annotations

import pytest

from leadflow_ingest.domain.currency import CURRENCY_CODES, is_currency, validate_money
from leadflow_ingest.domain.model import Money


@pytest.mark.parametrize("code", ["USD", "EUR", "JPY", "GBP", "CHF", "XAU"])
def test_known_codes(code: str) -> None:
    assert is_currency(code)


@pytest.mark.parametrize("code", ["usd", "Usd", "US", "USDT", "XYZ", "", " USD", "BTC"])
def test_unknown_codes(code: str) -> None:
    assert not is_currency(code)


def test_the_table_is_the_current_one() -> None:
    assert len(CURRENCY_CODES) > 150
    assert all(len(code) == 3 and code.isupper() for code in CURRENCY_CODES)


def found(money: Money) -> set[tuple[str, str]]:
    return {(v.field, v.code.value) for v in validate_money(money)}


@pytest.mark.parametrize(
    "money",
    [
        Money(10, 500_000_000, "USD"),
        Money(0, 999_999_999, "USD"),
        Money(0, -999_999_999, "USD"),
        Money(-3, -10, "EUR"),  # refunds are negative
        Money(-3, 0, "EUR"),
        Money(0, 0, ""),
        Money(0, 0, "JPY"),
        Money(2**63 - 1, 0, "USD"),
    ],
)
def test_valid_amounts(money: Money) -> None:
    assert validate_money(money) == []


@pytest.mark.parametrize(
    ("money", "expected"),
    [
        (Money(0, 1_000_000_000, "USD"), {("value.nanos", "INVALID_AMOUNT")}),
        (Money(0, -1_000_000_000, "USD"), {("value.nanos", "INVALID_AMOUNT")}),
        (Money(1, -1, "USD"), {("value.nanos", "INVALID_AMOUNT")}),
        (Money(-1, 1, "USD"), {("value.nanos", "INVALID_AMOUNT")}),
        (Money(2**63, 0, "USD"), {("value.units", "INVALID_AMOUNT")}),
        (Money(5, 0, ""), {("value.currency_code", "INVALID_CURRENCY")}),
        (Money(0, 1, ""), {("value.currency_code", "INVALID_CURRENCY")}),
        (Money(5, 0, "usd"), {("value.currency_code", "INVALID_CURRENCY")}),
        (Money(0, 0, "ABC"), {("value.currency_code", "INVALID_CURRENCY")}),
        (
            Money(1, -1, "XXY"),
            {("value.nanos", "INVALID_AMOUNT"), ("value.currency_code", "INVALID_CURRENCY")},
        ),
    ],
)
def test_invalid_amounts(money: Money, expected: set[tuple[str, str]]) -> None:
    assert found(money) == expected


def test_reasons_and_paths() -> None:
    [violation] = validate_money(Money(5, 0, "usd"), "event.value")
    assert violation.field == "event.value.currency_code"
    assert "upper case" in violation.reason
    [required] = validate_money(Money(5, 0, ""))
    assert "required" in required.reason
