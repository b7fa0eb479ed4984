"""Pure parts of KPI alerts: periods in a time zone (DST days of 23 and 25 hours, ISO weeks,
months, a zone whose midnight is skipped), which periods a run evaluates, the threshold
test, stable ids, the message, and the configuration's validation."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from leadflow.reporting.v1 import alerts_pb2
from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow.reporting.v1 import reporting_service_pb2 as pb
from leadflow_platform.errors import InvalidArgument
from leadflow_reporting.api import alert_requests
from leadflow_reporting.domain import kpis
from leadflow_reporting.domain.alerts import (
    ABOVE,
    BELOW,
    DAY,
    MONTH,
    WEEK,
    AlertConfig,
    Rule,
    alert,
    alert_id,
    breached,
    closed_periods,
    message,
    period_at,
    previous_period,
)

H_US = 3_600_000_000
PARIS = ZoneInfo("Europe/Paris")
UTC_ZONE = ZoneInfo("UTC")


def us(t: datetime) -> int:
    return int(t.timestamp()) * 1_000_000 + t.microsecond


def local(zone: ZoneInfo, *args: int) -> int:
    return us(datetime(*args, tzinfo=zone))


# Periods ----------------------------------------------------------------------------------


def test_days_weeks_and_months_in_utc() -> None:
    t = us(datetime(2025, 3, 5, 13, 30, tzinfo=UTC))  # a Wednesday
    assert period_at(t, DAY, UTC_ZONE) == (local(UTC_ZONE, 2025, 3, 5), local(UTC_ZONE, 2025, 3, 6))
    assert period_at(t, WEEK, UTC_ZONE) == (
        local(UTC_ZONE, 2025, 3, 3),
        local(UTC_ZONE, 2025, 3, 10),
    )
    assert period_at(t, MONTH, UTC_ZONE) == (
        local(UTC_ZONE, 2025, 3, 1),
        local(UTC_ZONE, 2025, 4, 1),
    )
    # A leap February; December rolls into the next year; a period's own start is in it.
    feb = period_at(local(UTC_ZONE, 2024, 2, 1), MONTH, UTC_ZONE)
    assert feb[1] - feb[0] == 29 * 24 * H_US
    dec = period_at(local(UTC_ZONE, 2024, 12, 31, 23), MONTH, UTC_ZONE)
    assert dec == (local(UTC_ZONE, 2024, 12, 1), local(UTC_ZONE, 2025, 1, 1))


def test_dst_days_last_23_and_25_hours() -> None:
    spring = period_at(local(PARIS, 2025, 3, 30, 12), DAY, PARIS)
    assert spring == (local(PARIS, 2025, 3, 30), local(PARIS, 2025, 3, 31))
    assert spring[1] - spring[0] == 23 * H_US
    autumn = period_at(local(PARIS, 2025, 10, 26, 12), DAY, PARIS)
    assert autumn[1] - autumn[0] == 25 * H_US
    # In UTC the Paris day starts at 23:00 (winter) or 22:00 (summer) the day before.
    assert spring[0] == us(datetime(2025, 3, 29, 23, tzinfo=UTC))
    assert spring[1] == us(datetime(2025, 3, 30, 22, tzinfo=UTC))
    # The week holding the spring change is an hour short; the month too.
    week = period_at(spring[0], WEEK, PARIS)
    assert week == (local(PARIS, 2025, 3, 24), local(PARIS, 2025, 3, 31))
    assert week[1] - week[0] == (7 * 24 - 1) * H_US
    month = period_at(spring[0], MONTH, PARIS)
    assert month[1] - month[0] == (31 * 24 - 1) * H_US


def test_a_zone_whose_midnight_is_skipped() -> None:
    # Santiago moves from 24:00 on 7 September 2024 to 01:00 on the 8th: that day starts
    # at 01:00 and lasts 23 hours, and the days before and after still meet.
    zone = ZoneInfo("America/Santiago")
    day = period_at(local(zone, 2024, 9, 8, 12), DAY, zone)
    assert day[0] == us(datetime(2024, 9, 8, 4, tzinfo=UTC))  # 01:00 at -03
    assert day[1] - day[0] == 23 * H_US
    assert previous_period(day[0], DAY, zone)[1] == day[0]
    assert period_at(day[1], DAY, zone)[0] == day[1]


def test_periods_around_dst_are_contiguous() -> None:
    now = local(PARIS, 2025, 11, 3, 9)
    found = closed_periods(local(PARIS, 2025, 3, 1), now, DAY, PARIS, limit=400)
    assert found[0] == (local(PARIS, 2025, 3, 1), local(PARIS, 2025, 3, 2))
    assert found[-1] == (local(PARIS, 2025, 11, 2), local(PARIS, 2025, 11, 3))
    assert all(a[1] == b[0] for a, b in itertools.pairwise(found))
    lengths = {(e - s) // H_US for s, e in found}
    assert lengths == {23, 24, 25}
    assert len(found) == 247


def test_closed_periods_bounds() -> None:
    d = [local(UTC_ZONE, 2025, 3, day) for day in range(1, 11)]
    # Periods ending after `after` and at or before now, oldest first.
    assert closed_periods(d[2], d[5], DAY, UTC_ZONE, 31) == [
        (d[2], d[3]),
        (d[3], d[4]),
        (d[4], d[5]),
    ]
    # A period ending exactly at `after` was evaluated; one ending after now is open.
    assert closed_periods(d[5], d[5] + 1, DAY, UTC_ZONE, 31) == []
    assert closed_periods(d[5] - 1, d[5] + H_US, DAY, UTC_ZONE, 31) == [(d[4], d[5])]
    # After an outage, only the most recent `limit` periods.
    assert closed_periods(d[0], d[9], DAY, UTC_ZONE, 2) == [(d[7], d[8]), (d[8], d[9])]
    # Weeks: the week of 3 March closed on the 10th (the one before on the 3rd).
    assert closed_periods(d[0], d[9], WEEK, UTC_ZONE, 31) == [
        (d[2] - 7 * 24 * H_US, d[2]),
        (d[2], d[9]),
    ]
    assert closed_periods(d[2], d[9] - 1, WEEK, UTC_ZONE, 31) == []


# Evaluation -------------------------------------------------------------------------------


def test_threshold_comparison() -> None:
    assert breached(3, 10.0, BELOW) and not breached(10, 10.0, BELOW)
    assert not breached(12, 10.0, BELOW)
    assert breached(0.61, 0.6, ABOVE) and not breached(0.6, 0.6, ABOVE)
    assert breached(Decimal("99.99"), Decimal(100), BELOW)
    assert not breached(Decimal("100.00"), Decimal(100), BELOW)


def test_alert_ids_are_stable_and_distinct() -> None:
    base = alert_id("t1", "low-conv", 3, DAY, 1_000)
    assert base == alert_id("t1", "low-conv", 3, DAY, 1_000)
    assert base.startswith("alert-") and len(base) == 38
    others = {
        alert_id("t2", "low-conv", 3, DAY, 1_000),
        alert_id("t1", "low-conv2", 3, DAY, 1_000),
        alert_id("t1", "low-conv", 4, DAY, 1_000),
        alert_id("t1", "low-conv", 3, WEEK, 1_000),
        alert_id("t1", "low-conv", 3, DAY, 1_001),
    }
    assert base not in others and len(others) == 5


def test_messages() -> None:
    day = local(UTC_ZONE, 2025, 3, 4)
    rule = Rule("low", kpis.CONVERSIONS, 10.0, brand_id="stacksense")
    assert message(rule, 3, 14, day, UTC_ZONE) == (
        "Stacksense conversions were 3 on 2025-03-04, below the threshold of 10 (previous day: 14)"
    )
    revenue = Rule("rev", kpis.REVENUE, Decimal(2000), period=WEEK, currency="USD")
    week = local(UTC_ZONE, 2025, 3, 3)
    assert message(revenue, Decimal("1234.5"), Decimal(1500), week, UTC_ZONE) == (
        "Portfolio revenue was 1,234.50 USD in the week of 2025-03-03, below the threshold"
        " of 2,000.00 USD (previous week: 1,500.00 USD)"
    )
    bounce = Rule("b", kpis.BOUNCE_RATE, 0.6, "modumind", MONTH, direction=ABOVE)
    assert message(bounce, 0.725, None, local(PARIS, 2025, 3, 1), PARIS) == (
        "Modumind bounce rate was 72.5% in March 2025, above the threshold of 60%"
    )
    # A local day is named in the configuration's zone, not in UTC.
    assert "on 2025-03-30" in message(rule, 1, 2, local(PARIS, 2025, 3, 30), PARIS)


def test_alert_carries_rule_period_and_previous_value() -> None:
    config = AlertConfig(7, (), "Europe/Paris", 0)
    rule = Rule("hot", kpis.HOT_LEADS, 5.0, "epicquest")
    period = period_at(local(PARIS, 2025, 3, 30, 12), DAY, PARIS)
    a = alert("t", config, rule, period, 2, 6, 123)
    assert (a.start_us, a.end_us, a.config_version, a.previous, a.raised_at_us) == (
        *period,
        7,
        6,
        123,
    )
    assert a.alert_id == alert_id("t", "hot", 7, DAY, period[0])
    assert a.message.startswith("Epicquest hot leads were 2 on 2025-03-30")


# Validation -------------------------------------------------------------------------------


def _request(*rules: alerts_pb2.KpiAlertRule, **config: object) -> pb.PutAlertConfigRequest:
    return pb.PutAlertConfigRequest(config=alerts_pb2.AlertConfig(rules=list(rules), **config))


def _fields(request: pb.PutAlertConfigRequest) -> dict[str, str]:
    with pytest.raises(InvalidArgument) as info:
        alert_requests.put_config(request)
    return {v.field: v.reason for v in info.value.violations}


def test_config_validation_names_every_bad_field() -> None:
    number = rt.KpiValue(number=5)
    usd = rt.KpiValue(money={"currency_code": "USD", "units": 100})
    bad = _fields(
        _request(
            alerts_pb2.KpiAlertRule(rule_id="ok", kpi=rt.KPI_LEADS, threshold=number),
            alerts_pb2.KpiAlertRule(rule_id="Bad Id", kpi=rt.KPI_LEADS, threshold=number),
            alerts_pb2.KpiAlertRule(rule_id="no-kpi", threshold=number),
            alerts_pb2.KpiAlertRule(rule_id="rev", kpi=rt.KPI_REVENUE, threshold=number),
            alerts_pb2.KpiAlertRule(rule_id="conv", kpi=rt.KPI_CONVERSIONS, threshold=usd),
            alerts_pb2.KpiAlertRule(
                rule_id="rate", kpi=rt.KPI_CONVERSION_RATE, threshold=rt.KpiValue(number=1.5)
            ),
            alerts_pb2.KpiAlertRule(rule_id="ok", kpi=rt.KPI_SESSIONS, threshold=number),
            alerts_pb2.KpiAlertRule(rule_id="none", kpi=rt.KPI_SESSIONS),
            alerts_pb2.KpiAlertRule(
                rule_id="text", kpi=rt.KPI_SESSIONS, threshold=number, description="x" * 501
            ),
            alerts_pb2.KpiAlertRule(
                rule_id="eur",
                kpi=rt.KPI_MRR,
                threshold=rt.KpiValue(money={"currency_code": "eur", "units": 1}),
            ),
            time_zone="Mars/Olympus",
        )
    )
    assert set(bad) == {
        "config.rules[1].rule_id",
        "config.rules[2].kpi",
        "config.rules[3].threshold",
        "config.rules[4].threshold",
        "config.rules[5].threshold.number",
        "config.rules[6].rule_id",
        "config.rules[7].threshold",
        "config.rules[8].description",
        "config.rules[9].threshold.money.currency_code",
        "config.time_zone",
    }
    assert "money" in bad["config.rules[3].threshold"]
    assert "used by another rule" in bad["config.rules[6].rule_id"]
    too_many = [
        alerts_pb2.KpiAlertRule(rule_id=f"r{i}", kpi=rt.KPI_LEADS, threshold=number)
        for i in range(201)
    ]
    assert set(_fields(_request(*too_many))) == {"config.rules"}
    assert "config" in _fields(pb.PutAlertConfigRequest())


def test_config_defaults_are_filled_in() -> None:
    config, expected = alert_requests.put_config(
        _request(
            alerts_pb2.KpiAlertRule(
                rule_id="r",
                kpi=rt.KPI_ARR,
                threshold=rt.KpiValue(
                    money={"currency_code": "EUR", "units": 12, "nanos": 500_000_000}
                ),
            )
        )
    )
    assert expected is None and config.time_zone == "UTC"
    (rule,) = config.rules
    assert (rule.period, rule.direction, rule.currency) == (DAY, BELOW, "EUR")
    assert rule.threshold == Decimal("12.5")


def test_page_tokens_belong_to_their_query() -> None:
    request = pb.ListAlertsRequest(kpis=[rt.KPI_LEADS])
    q = alert_requests.list_alerts(request)
    token = alert_requests.page_token(q.fingerprint, 42, "alert-x")
    request.page.page_token = token
    assert alert_requests.list_alerts(request).after == (42, "alert-x")
    other = pb.ListAlertsRequest(kpis=[rt.KPI_REVENUE])
    other.page.page_token = token
    with pytest.raises(InvalidArgument, match="page.page_token"):
        alert_requests.list_alerts(other)
    long_range = pb.ListAlertsRequest()
    long_range.range.start_time.FromDatetime(datetime(2020, 1, 1))
    long_range.range.end_time.FromDatetime(datetime(2020, 1, 1) + timedelta(days=900))
    assert alert_requests.list_alerts(long_range).start_us is not None
