"""The weekly report: the week and the week before (Monday to Monday in the request's time
zone), composed from the existing reports' answers (portfolio metrics of both weeks, source
insights, attribution summary, lead quality, the real-time rollups per day) and the alerts
raised for the week, then rendered as HTML and plain text (domain/weekly_render.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from leadflow_reporting.alerts import Alerts
from leadflow_reporting.business import (
    AttributionAnswer,
    BrandFigures,
    BusinessReports,
    InsightsQuery,
    PortfolioAnswer,
    kpi_changes,
)
from leadflow_reporting.domain import kpis, weekly
from leadflow_reporting.domain.alerts import Alert
from leadflow_reporting.domain.query import RealTimeQuery
from leadflow_reporting.domain.realtime import DAY_MINUTES
from leadflow_reporting.domain.weekly import DayCount, Week, WeeklySummary
from leadflow_reporting.domain.weekly_render import html, text
from leadflow_reporting.realtime import RealTime

# Source insights as GetSourceInsights answers them by default: by source and channel,
# first touch, 30 participants per group, 5% significance. More findings are asked than
# shown, since the same sentence can come from both dimensions.
INSIGHT_DIMENSIONS = (weekly.DIMENSION_SOURCE, weekly.DIMENSION_CHANNEL)
MIN_PARTICIPANTS = 30
ALPHA = 0.05
FINDINGS_ASKED = 20
ATTRIBUTION_ROWS = 10
# Response header naming the tenant of the caller's key (`leadflow report weekly` checks it).
TENANT_HEADER = "leadflow-tenant"


@dataclass(frozen=True)
class WeeklyQuery:
    week_start_us: int | None  # any instant in the week; None: the last complete week
    time_zone: str
    brand_ids: tuple[str, ...] = ()
    title: str = ""


@dataclass(frozen=True)
class WeeklyAnswer:
    summary: WeeklySummary
    # The answers the summary's brands, attribution and alerts come from, as their RPCs
    # map them.
    portfolio: PortfolioAnswer
    attribution: AttributionAnswer
    alerts: list[Alert]
    html: str
    text: str


def week_kpis(
    now: BrandFigures,
    before: BrandFigures,
    now_brands: Sequence[BrandFigures],
    before_brands: Sequence[BrandFigures],
) -> list[kpis.KpiChange]:
    """The portfolio's KPI changes, then each brand's (brands of either week, by id; a
    brand missing from a week counts zero there)."""
    out = kpi_changes(now, before)
    current = {b.brand_id: b for b in now_brands}
    earlier = {b.brand_id: b for b in before_brands}
    for brand in sorted(set(current) | set(earlier)):
        out += kpi_changes(
            current.get(brand, BrandFigures(brand)), earlier.get(brand, BrandFigures(brand))
        )
    return out


class WeeklyReports:
    def __init__(self, business: BusinessReports, real_time: RealTime, alerts: Alerts) -> None:
        self._business = business
        self._real_time = real_time
        self._alerts = alerts

    @classmethod
    def of(cls, reports: Any) -> WeeklyReports:
        """From the servicer's report use cases."""
        return cls(reports.business, reports.real_time, reports.alerts)

    async def run(self, tenant_id: str, q: WeeklyQuery, now_us: int) -> WeeklyAnswer:
        week = weekly.report_week(q.week_start_us, now_us, q.time_zone)
        previous = weekly.week_before(week)
        b = self._business
        brands = q.brand_ids
        # Independent reads, each in its own snapshot: run together (gather, not a task
        # group, so an error reaches the interceptor as itself, not in an ExceptionGroup).
        current, earlier, found, attribution, quality, days = await asyncio.gather(
            b.portfolio.run(tenant_id, week.start_us, week.end_us, brands),
            b.portfolio.run(tenant_id, previous.start_us, previous.end_us, brands),
            b.insights.run(
                tenant_id,
                InsightsQuery(
                    start_us=week.start_us,
                    end_us=week.end_us,
                    dimensions=INSIGHT_DIMENSIONS,
                    last_touch=False,
                    conversion=None,
                    min_participants=MIN_PARTICIPANTS,
                    alpha=ALPHA,
                    max_findings=FINDINGS_ASKED,
                    brand_ids=brands,
                ),
            ),
            b.attribution.run(
                tenant_id,
                week.start_us,
                week.end_us,
                brands,
                weekly.MODELS,
                "channel",
                ATTRIBUTION_ROWS,
                (),
            ),
            # The read model keeps each lead's latest score only: quality as of now.
            b.lead_quality.run(tenant_id, None, brands, False),
            self._days(tenant_id, week, brands, now_us),
        )
        # Alerts of the days, weeks and months overlapping the week, newest first.
        alerts = await self._alerts.in_range(tenant_id, week.start_us, week.end_us, brands)
        summary = weekly.summary(
            title=q.title or weekly.default_title(tenant_id, week),
            week=week,
            previous_week=previous,
            kpi_changes=week_kpis(current.total, earlier.total, current.brands, earlier.brands),
            total=current.total,
            brands=current.brands,
            findings=found.findings,
            attribution=attribution.models,
            lead_quality=quality.total,
            days=days,
            alerts=alerts,
        )
        return WeeklyAnswer(summary, current, attribution, alerts, html(summary), text(summary))

    async def _days(
        self, tenant_id: str, week: Week, brand_ids: Sequence[str], now_us: int
    ) -> list[DayCount]:
        """Human events and conversions per local day, from the real-time rollups."""
        answer = await self._real_time.view(
            tenant_id,
            RealTimeQuery(
                start_us=week.start_us,
                end_us=week.end_us,
                bucket_minutes=DAY_MINUTES,
                time_zone=week.time_zone,
                brand_ids=tuple(brand_ids),
                now_us=now_us,
            ),
        )
        starts = answer.window.starts
        out = []
        for d in week.days():
            i = starts.index(d.start_us)
            events = sum(s.points[i] for s in answer.series)
            out.append(DayCount(d.day, events, answer.conversion_points[i]))
        return out
