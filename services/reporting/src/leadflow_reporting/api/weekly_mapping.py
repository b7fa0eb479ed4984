"""GetWeeklyReport: the request checked and turned into a WeeklyQuery (every violation names
its field), the answer as a proto, and its KPI changes as export rows."""

from __future__ import annotations

from collections.abc import Iterator

from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow.reporting.v1 import reporting_service_pb2 as pb
from leadflow_platform.errors import FieldViolation, InvalidArgument
from leadflow_reporting.api import business_mapping as bm
from leadflow_reporting.api.alert_mapping import kpi_alert
from leadflow_reporting.api.mapping import timestamp
from leadflow_reporting.api.requests import brands, zone
from leadflow_reporting.domain import weekly
from leadflow_reporting.domain.export_format import Row, decimal_text
from leadflow_reporting.weekly import WeeklyAnswer, WeeklyQuery

TITLE_MAX = 200
DAY_US = 86_400_000_000
# 1971-01-01: the week before the report's week must still lie after the epoch.
EARLIEST_US = 31_536_000 * 1_000_000


def weekly_query(request: pb.GetWeeklyReportRequest, now_us: int) -> WeeklyQuery:
    bad: list[FieldViolation] = []
    tz = zone(request.time_zone, "time_zone", bad)
    week_start: int | None = None
    if request.HasField("week_start"):
        ts = request.week_start
        week_start = ts.seconds * 1_000_000 + ts.nanos // 1000
        if not 0 <= ts.nanos < 1_000_000_000:
            bad.append(FieldViolation("week_start", "nanos must be in 0..999,999,999"))
        elif week_start < EARLIEST_US:
            bad.append(FieldViolation("week_start", "must be in 1971 or later"))
        elif week_start > now_us and (
            # A week starts less than 7 days (and a clock change) before any of its instants.
            week_start - now_us > 8 * DAY_US or weekly.week_of(week_start, tz).start_us > now_us
        ):
            bad.append(FieldViolation("week_start", "the week has not started yet"))
    if len(request.title) > TITLE_MAX:
        bad.append(FieldViolation("title", f"at most {TITLE_MAX} characters"))
    brand_ids = brands(list(request.brand_ids), "brand_ids", bad)
    if bad:
        raise InvalidArgument(*bad)
    return WeeklyQuery(week_start, tz, brand_ids, request.title)


def summary(answer: WeeklyAnswer) -> pb.WeeklySummary:
    s = answer.summary
    out = pb.WeeklySummary(
        kpis=[bm.kpi_change(c) for c in s.kpis],
        brands=[bm.brand_metrics(b) for b in answer.portfolio.brands],
        top_insights=[bm.finding(f) for f in s.top_insights],
        actions=[
            pb.RecommendedAction(
                text=a.text, rationale=a.rationale, kpi=rt.Kpi.ValueType(a.kpi), brand_id=a.brand_id
            )
            for a in s.actions
        ],
        attribution=bm.attribution_response(answer.attribution).models,
        lead_quality=bm.quality(s.lead_quality),
    )
    out.alerts.extend(kpi_alert(a) for a in answer.alerts)
    for target, week in ((out.week, s.week), (out.previous_week, s.previous_week)):
        target.start_time.CopyFrom(timestamp(week.start_us))
        target.end_time.CopyFrom(timestamp(week.end_us))
    return out


def weekly_response(answer: WeeklyAnswer) -> pb.GetWeeklyReportResponse:
    return pb.GetWeeklyReportResponse(html=answer.html, text=answer.text, summary=summary(answer))


WEEKLY_COLUMNS = (
    "week_start",
    "week_end",
    "brand_id",
    "kpi",
    "currency",
    "current",
    "previous",
    "relative_change",
    "direction",
    "favourable",
)
DIRECTIONS = {
    rt.CHANGE_DIRECTION_UP: "up",
    rt.CHANGE_DIRECTION_DOWN: "down",
    rt.CHANGE_DIRECTION_FLAT: "flat",
}


def _value(v: rt.KpiValue) -> float | str:
    if v.WhichOneof("value") == "money":
        return decimal_text(v.money.units, v.money.nanos)
    return v.number


def weekly_rows(r: pb.GetWeeklyReportResponse) -> Iterator[Row]:
    """One row per KPI change (portfolio first, then per brand), the week repeated."""
    s = r.summary
    start = s.week.start_time.ToDatetime().strftime("%Y-%m-%dT%H:%M:%SZ")
    end = s.week.end_time.ToDatetime().strftime("%Y-%m-%dT%H:%M:%SZ")
    for c in s.kpis:
        yield (
            start,
            end,
            c.brand_id,
            c.kpi_name,
            c.current.money.currency_code if c.current.WhichOneof("value") == "money" else "",
            _value(c.current),
            _value(c.previous),
            c.relative_change if c.HasField("relative_change") else None,
            DIRECTIONS.get(c.direction, ""),
            c.favourable,
        )
