"""KPI alerts, pure: rules, the closed periods a rule is evaluated over (calendar days, ISO
weeks and months in the configuration's time zone, 23- and 25-hour days included), the
threshold test, the stable alert id and the plain-language message. Times are microseconds
since the Unix epoch; numbers are floats, amounts of money Decimals."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from leadflow_reporting.domain import kpis
from leadflow_reporting.domain.retention import Period, next_period_day, period_day
from leadflow_reporting.domain.stats import display, percent

# leadflow.reporting.v1.AlertPeriod and ThresholdDirection values (UNSPECIFIED is the first).
DAY, WEEK, MONTH = 1, 2, 3
PERIOD_KINDS = (DAY, WEEK, MONTH)
BELOW, ABOVE = 1, 2
_PERIODS = {DAY: Period.DAY, WEEK: Period.WEEK, MONTH: Period.MONTH}
_PERIOD_WORDS = {DAY: "day", WEEK: "week", MONTH: "month"}
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

Amount = float | Decimal

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Rule:
    rule_id: str
    kpi: int
    threshold: Amount
    brand_id: str = ""
    period: int = DAY
    currency: str = ""  # money KPIs only
    direction: int = BELOW
    disabled: bool = False
    description: str = ""


@dataclass(frozen=True)
class AlertConfig:
    version: int
    rules: tuple[Rule, ...]
    time_zone: str = "UTC"
    saved_at_us: int = 0


@dataclass(frozen=True)
class Alert:
    alert_id: str
    rule_id: str
    config_version: int
    kpi: int
    brand_id: str
    value: Amount
    threshold: Amount
    currency: str
    direction: int
    period_kind: int
    start_us: int
    end_us: int
    previous: Amount | None
    message: str
    raised_at_us: int


# Periods ----------------------------------------------------------------------------------


def _us(value: datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _instant(day: date, zone: ZoneInfo) -> int:
    """Local midnight of `day` (the first instant of the day)."""
    return _us(datetime.combine(day, time(0), tzinfo=zone))


def _local_day(t_us: int, zone: ZoneInfo) -> date:
    return (_EPOCH + timedelta(microseconds=t_us)).astimezone(zone).date()


def period_at(t_us: int, kind: int, zone: ZoneInfo) -> tuple[int, int]:
    """The period of `kind` holding the instant: [start, end)."""
    period = _PERIODS[kind]
    first = period_day(_local_day(t_us, zone), period)
    return _instant(first, zone), _instant(next_period_day(first, period), zone)


def previous_period(start_us: int, kind: int, zone: ZoneInfo) -> tuple[int, int]:
    """The period of `kind` just before the one starting at start_us."""
    return period_at(start_us - 1, kind, zone)


def closed_periods(
    after_us: int, now_us: int, kind: int, zone: ZoneInfo, limit: int
) -> list[tuple[int, int]]:
    """Periods that ended after `after_us` and at or before `now_us`, oldest first; at most
    the `limit` most recent."""
    out: list[tuple[int, int]] = []
    end, _ = period_at(now_us, kind, zone)  # the period holding now has not ended
    while end > after_us and len(out) < limit:
        start, _ = previous_period(end, kind, zone)
        out.append((start, end))
        end = start
    return out[::-1]


# Evaluation -------------------------------------------------------------------------------


def breached(value: Amount, threshold: Amount, direction: int) -> bool:
    """BELOW: value < threshold; ABOVE: value > threshold (equal never alerts)."""
    return value > threshold if direction == ABOVE else value < threshold


def alert_id(tenant_id: str, rule_id: str, version: int, kind: int, start_us: int) -> str:
    """Stable across replicas and re-evaluations: the same rule, version and period always
    give the same id (the tenant is part of it, as the id is also the event's message id)."""
    key = "\x1f".join((tenant_id, rule_id, str(version), str(kind), str(start_us)))
    return "alert-" + hashlib.sha256(key.encode()).hexdigest()[:32]


def value_text(kpi: int, value: Amount, currency: str = "") -> str:
    """12.5% for rates, "1,234.50 USD" for money, "1,234" (or "2.5") for counts."""
    if kpi in kpis.RATES:
        return percent(float(value))
    if currency:
        return f"{Decimal(value):,.2f} {currency}"
    number = float(value)
    return f"{int(number):,}" if number.is_integer() else f"{number:g}"


def _when(start_us: int, kind: int, zone: ZoneInfo) -> str:
    day = _local_day(start_us, zone)
    if kind == WEEK:
        return f"in the week of {day:%Y-%m-%d}"
    if kind == MONTH:
        return f"in {_MONTHS[day.month - 1]} {day.year}"
    return f"on {day:%Y-%m-%d}"


def message(
    rule: Rule, value: Amount, previous: Amount | None, start_us: int, zone: ZoneInfo
) -> str:
    """E.g. "Stacksense conversions were 3 on 2025-03-04, below the threshold of 10
    (previous day: 14)"."""
    name, plural = kpis.NAMES[rule.kpi]
    scope = display(rule.brand_id) if rule.brand_id else "Portfolio"
    side = "above" if rule.direction == ABOVE else "below"
    text = (
        f"{scope} {name} {'were' if plural else 'was'}"
        f" {value_text(rule.kpi, value, rule.currency)} {_when(start_us, rule.period, zone)},"
        f" {side} the threshold of {value_text(rule.kpi, rule.threshold, rule.currency)}"
    )
    if previous is not None:
        before = value_text(rule.kpi, previous, rule.currency)
        text += f" (previous {_PERIOD_WORDS[rule.period]}: {before})"
    return text


def alert(
    tenant_id: str,
    config: AlertConfig,
    rule: Rule,
    period: tuple[int, int],
    value: Amount,
    previous: Amount | None,
    raised_at_us: int,
) -> Alert:
    """The alert of a rule whose KPI was on the wrong side of its threshold in a period."""
    start, end = period
    zone = ZoneInfo(config.time_zone)
    return Alert(
        alert_id=alert_id(tenant_id, rule.rule_id, config.version, rule.period, start),
        rule_id=rule.rule_id,
        config_version=config.version,
        kpi=rule.kpi,
        brand_id=rule.brand_id,
        value=value,
        threshold=rule.threshold,
        currency=rule.currency,
        direction=rule.direction,
        period_kind=rule.period,
        start_us=start,
        end_us=end,
        previous=previous,
        message=message(rule, value, previous, start, zone),
        raised_at_us=raised_at_us,
    )
