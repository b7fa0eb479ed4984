"""The weekly report's pure parts: the week in a time zone (DST weeks included), the number
formats, and the recommended-action rules over a summary."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from weekly_support import Figures, RaisedAlert

from leadflow_reporting.domain import kpis, weekly
from leadflow_reporting.domain.insights import Finding, Kind
from leadflow_reporting.domain.quality import quality

HOUR_US = 3_600_000_000


def us(t: datetime) -> int:
    return int(t.timestamp()) * 1_000_000 + t.microsecond


GAP = Finding(
    "Email converts at 25% (12/48), Twitter at 0% (0/40): the difference is significant"
    " (p = 0.001)",
    Kind.CONVERSION_RATE_GAP,
    12.0,
    ("email", "twitter"),
    None,
    weekly.DIMENSION_SOURCE,
)
ZERO = Finding(
    "Facebook brought 35 participants and no conversions (overall 10%)",
    Kind.ZERO_CONVERSIONS,
    3.5,
    ("facebook",),
    None,
    weekly.DIMENSION_SOURCE,
)


def build(
    changes: list[kpis.KpiChange] | None = None,
    brands: list[Figures] | None = None,
    findings: list[Finding] | None = None,
    alerts: list[RaisedAlert] | None = None,
) -> weekly.WeeklySummary:
    week = weekly.week_at(date(2025, 3, 3), "UTC")
    return weekly.summary(
        title="t",
        week=week,
        previous_week=weekly.week_before(week),
        kpi_changes=changes or [],
        total=Figures(""),
        brands=brands or [],
        findings=findings or [],
        attribution=[],
        lead_quality=quality("", []),
        days=[],
        alerts=alerts or [],
    )


# The week ------------------------------------------------------------------------------


def test_the_week_runs_from_local_monday_midnight_to_the_next() -> None:
    paris = ZoneInfo("Europe/Paris")
    tuesday = datetime(2025, 3, 4, 15, 30, tzinfo=paris)
    week = weekly.week_of(us(tuesday), "Europe/Paris")
    assert week.monday == date(2025, 3, 3)
    assert week.start_us == us(datetime(2025, 3, 3, tzinfo=paris))  # 2025-03-02 23:00 UTC
    assert week.start_us == us(datetime(2025, 3, 2, 23, tzinfo=UTC))
    assert week.end_us - week.start_us == 168 * HOUR_US
    assert week.label == "2025-03-03 to 2025-03-09"
    # Monday 00:00 starts a week; the instant before belongs to the previous one.
    assert weekly.week_of(week.start_us, "Europe/Paris") == week
    assert weekly.week_of(week.start_us - 1, "Europe/Paris").monday == date(2025, 2, 24)
    assert weekly.week_before(week) == weekly.week_of(week.start_us - 1, "Europe/Paris")
    # The same instant is in another week in another zone: Monday 01:00 in Paris is
    # Sunday in New York.
    monday_early = us(datetime(2025, 3, 3, 1, tzinfo=paris))
    assert weekly.week_of(monday_early, "America/New_York").monday == date(2025, 2, 24)


def test_daylight_saving_weeks_have_167_and_169_hours() -> None:
    spring = weekly.week_at(date(2025, 3, 24), "Europe/Paris")  # clocks forward on the 30th
    autumn = weekly.week_at(date(2025, 10, 20), "Europe/Paris")  # back on the 26th
    assert spring.end_us - spring.start_us == 167 * HOUR_US
    assert autumn.end_us - autumn.start_us == 169 * HOUR_US
    for week in (spring, autumn):
        days = week.days()
        assert [d.day for d in days] == [week.monday + timedelta(days=k) for k in range(7)]
        assert days[0].start_us == week.start_us and days[-1].end_us == week.end_us
        assert all(a.end_us == b.start_us for a, b in itertools.pairwise(days))
    assert spring.days()[6].end_us - spring.days()[6].start_us == 23 * HOUR_US
    assert autumn.days()[6].end_us - autumn.days()[6].start_us == 25 * HOUR_US


def test_a_day_whose_midnight_does_not_exist_starts_when_the_gap_ends() -> None:
    # Chile moved its clocks from 00:00 to 01:00 on Sunday 2024-09-08.
    week = weekly.week_at(date(2024, 9, 2), "America/Santiago")
    sunday = week.days()[6]
    assert sunday.start_us == us(datetime(2024, 9, 8, 4, tzinfo=UTC))  # 01:00 -03
    assert sunday.end_us - sunday.start_us == 23 * HOUR_US


def test_without_an_instant_the_report_is_of_the_last_complete_week() -> None:
    now = us(datetime(2025, 3, 5, 9, tzinfo=UTC))  # a Wednesday
    assert weekly.report_week(None, now, "UTC").monday == date(2025, 2, 24)
    monday = us(datetime(2025, 3, 3, tzinfo=UTC))
    assert weekly.report_week(None, monday, "UTC").monday == date(2025, 2, 24)
    assert weekly.report_week(monday, now, "UTC").monday == date(2025, 3, 3)


# Formats -------------------------------------------------------------------------------


def test_number_money_and_change_formats() -> None:
    assert weekly.number(1234) == "1,234"
    assert weekly.number(2.5) == "2.5"
    assert weekly.number(Decimal("3")) == "3"
    assert weekly.money(Decimal("1234.5"), "USD") == "1,234.50 USD"
    assert weekly.money(Decimal("0"), "EUR") == "0.00 EUR"
    up = kpis.KpiChange(kpis.CONVERSIONS, "", 50, 40)
    down = kpis.KpiChange(kpis.CONVERSIONS, "", 30, 50)
    assert weekly.change_text(up) == "+25%"
    assert weekly.change_text(down) == "-40%"
    assert weekly.change_text(kpis.KpiChange(kpis.LEADS, "", 3, 0)) == "new"
    assert weekly.change_text(kpis.KpiChange(kpis.LEADS, "", 0, 0)) == "no change"
    assert weekly.change_text(kpis.KpiChange(kpis.LEADS, "", 7, 7)) == "no change"
    rate = kpis.KpiChange(kpis.CONVERSION_RATE, "", 0.125, 0.1)
    assert weekly.kpi_value(rate, rate.current) == "12.5%"
    assert weekly.change_text(rate) == "+25%"
    revenue = kpis.KpiChange(kpis.REVENUE, "", Decimal("10.5"), Decimal("7"), "EUR")
    assert weekly.kpi_value(revenue, revenue.current) == "10.50 EUR"
    assert weekly.kpi_label(revenue) == "revenue (EUR)"


# Recommended actions -------------------------------------------------------------------


def test_a_kpi_that_fell_more_than_ten_percent_is_named_with_its_numbers() -> None:
    s = build(
        [
            kpis.KpiChange(kpis.CONVERSIONS, "", 42, 60),  # -30%
            kpis.KpiChange(kpis.LEADS, "", 95, 100),  # -5%: not enough
            kpis.KpiChange(kpis.ACTIVE_SUBJECTS, "", 130, 100),  # up: good news
        ]
    )
    assert [(a.text, a.rationale, a.kpi) for a in s.actions] == [
        (
            "Find out why conversions fell across the portfolio",
            "Conversions across the portfolio fell 30% week over week (42 vs 60)",
            kpis.CONVERSIONS,
        )
    ]


def test_small_bases_do_not_raise_actions() -> None:
    s = build(
        [
            kpis.KpiChange(kpis.CONVERSIONS, "modumind", 2, 4),  # -50% of 4
            kpis.KpiChange(kpis.ACTIVE_SUBJECTS, "modumind", 24, 25),
            kpis.KpiChange(kpis.CONVERSION_RATE, "modumind", 0.1, 0.16),  # 24 active
            kpis.KpiChange(kpis.REVENUE, "modumind", Decimal(1), Decimal(0), "USD"),
        ]
    )
    assert s.actions == []
    enough = build(
        [
            kpis.KpiChange(kpis.ACTIVE_SUBJECTS, "modumind", 48, 50),
            kpis.KpiChange(kpis.CONVERSION_RATE, "modumind", 0.1, 0.16),
        ]
    )
    assert [a.rationale for a in enough.actions] == [
        "Conversion rate at modumind fell 37.5% week over week (10% vs 16%)"
    ]


def test_a_lower_is_better_kpi_that_rose_is_brought_back_down() -> None:
    s = build(
        [kpis.KpiChange(kpis.SLA_BREACHES, "stacksense", 9, 6)],
        [Figures("stacksense", sla_breaches=9)],
    )
    assert [(a.text, a.rationale, a.brand_id) for a in s.actions] == [
        (
            "Bring SLA breaches at stacksense back down",
            "SLA breaches at stacksense rose 50% week over week (9 vs 6)",
            "stacksense",
        )
    ]  # the breach rule does not name the same brand again


def test_every_rule_in_order_and_at_most_five() -> None:
    s = build(
        changes=[
            kpis.KpiChange(kpis.CONVERSIONS, "modumind", 10, 40),  # -75%
            kpis.KpiChange(kpis.CONVERSIONS, "", 50, 80),  # -37.5%, the portfolio first
            kpis.KpiChange(kpis.LEADS, "epicquest", 15, 20),  # -25%, third: left out
        ],
        brands=[
            Figures("modumind", conversions=10, hot_leads=12, routed_in=2, sla_breaches=1),
            Figures("stacksense", conversions=30, hot_leads=3, routed_in=3, sla_breaches=4),
        ],
        findings=[ZERO, GAP],
        alerts=[RaisedAlert(kpis.CONVERSIONS, "modumind", "Modumind conversions were 10 ...")],
    )
    assert [a.text for a in s.actions] == [
        "Act on the conversions alert at modumind",
        "Find out why conversions fell across the portfolio",
        "Find out why conversions fell at modumind",
        "Shift budget from Twitter to Email",
        "Follow up the hot leads of modumind",
    ]
    assert s.actions[0].rationale == "Modumind conversions were 10 ..."
    assert s.actions[3].rationale == GAP.text
    assert (
        s.actions[4].rationale
        == "12 leads of modumind are hot now and 2 were routed to it this week"
    )
    assert s.actions[4].kpi == kpis.ROUTED_LEADS
    # Without the alert and the drops, the later rules come in.
    rest = build(brands=s.brands, findings=[ZERO, GAP])  # type: ignore[arg-type]
    assert [a.text for a in rest.actions] == [
        "Shift budget from Twitter to Email",
        "Follow up the hot leads of modumind",
        "Speed up first contact at stacksense",
        "Review what Facebook brings: no conversions this week",
    ]
    assert rest.actions[2].rationale == "4 assignments to stacksense breached their SLA this week"


def test_a_channel_gap_is_used_when_no_source_gap_is_significant() -> None:
    channel_gap = Finding(GAP.text, GAP.kind, GAP.impact, ("email", "social"), None, 1)
    s = build(findings=[channel_gap])
    assert [a.text for a in s.actions] == ["Shift budget from Social to Email"]


def test_insights_keep_each_sentence_once_highest_impact_first_at_most_ten() -> None:
    same = Finding(GAP.text, GAP.kind, GAP.impact, GAP.values, None, weekly.DIMENSION_CHANNEL)
    many = [Finding(f"f{i}", Kind.KPI_CHANGE, float(i)) for i in range(20)]
    s = build(findings=[ZERO, GAP, same, *many])
    assert len(s.top_insights) == 10
    assert [f.text for f in s.top_insights][:3] == ["f19", "f18", "f17"]
    assert sum(f.text == GAP.text for f in s.top_insights) == 1
    impacts = [f.impact for f in s.top_insights]
    assert impacts == sorted(impacts, reverse=True)


# The request ---------------------------------------------------------------------------


def test_the_request_is_checked_field_by_field() -> None:
    from leadflow.reporting.v1 import reporting_service_pb2 as pb
    from leadflow_platform.errors import InvalidArgument
    from leadflow_reporting.api.weekly_mapping import weekly_query

    now = us(datetime(2025, 3, 5, 9, tzinfo=UTC))  # a Wednesday
    later_this_week = pb.GetWeeklyReportRequest(time_zone="Europe/Paris")
    later_this_week.week_start.FromDatetime(datetime(2025, 3, 8, tzinfo=UTC))
    q = weekly_query(later_this_week, now)
    assert (q.week_start_us, q.time_zone) == (us(datetime(2025, 3, 8, tzinfo=UTC)), "Europe/Paris")
    assert weekly_query(pb.GetWeeklyReportRequest(), now).time_zone == "UTC"

    def refused(request: pb.GetWeeklyReportRequest) -> list[str]:
        try:
            weekly_query(request, now)
        except InvalidArgument as exc:
            return [f"{v.field}: {v.reason}" for v in exc.violations]
        raise AssertionError("accepted")

    next_week = pb.GetWeeklyReportRequest()
    next_week.week_start.FromDatetime(datetime(2025, 3, 10, 0, 30, tzinfo=UTC))
    assert refused(next_week) == ["week_start: the week has not started yet"]
    far = pb.GetWeeklyReportRequest()
    far.week_start.seconds = 253_402_300_799  # 9999-12-31: no week after it to compute
    assert refused(far) == ["week_start: the week has not started yet"]
    early = pb.GetWeeklyReportRequest(time_zone="Nowhere/City", title="x" * 201)
    early.week_start.seconds = -86_400
    early.brand_ids.append("")
    assert refused(early) == [
        "time_zone: unknown time zone 'Nowhere/City'",
        "week_start: must be in 1971 or later",
        "title: at most 200 characters",
        "brand_ids[0]: 1 to 100 characters",
    ]
