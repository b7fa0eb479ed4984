"""The terminal summary of a demo run: reports asked of the reporting service over gRPC,
drawn as rich tables (the drawing is pure: answers in, tables out)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from rich.table import Table

from leadflow.attribution.v1 import attribution_types_pb2 as at
from leadflow.common.v1 import lead_pb2, money_pb2, time_range_pb2
from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow.reporting.v1 import reporting_service_pb2 as pb
from leadflow.reporting.v1 import reporting_service_pb2_grpc

MODELS = (
    at.ATTRIBUTION_MODEL_FIRST_TOUCH,
    at.ATTRIBUTION_MODEL_LAST_TOUCH,
    at.ATTRIBUTION_MODEL_LINEAR,
)
GRADES = (
    lead_pb2.GRADE_A_PLUS,
    lead_pb2.GRADE_A,
    lead_pb2.GRADE_B_PLUS,
    lead_pb2.GRADE_B,
    lead_pb2.GRADE_C_PLUS,
    lead_pb2.GRADE_C,
    lead_pb2.GRADE_D,
)


@dataclass(frozen=True)
class Answers:
    quality: pb.GetLeadQualityResponse
    attribution: pb.GetAttributionSummaryResponse
    portfolio: pb.GetPortfolioMetricsResponse
    insights: pb.GetSourceInsightsResponse
    weekly: pb.GetWeeklyReportResponse


async def ask(
    stub: reporting_service_pb2_grpc.ReportingServiceStub,
    metadata: tuple[tuple[str, str], ...],
    start: datetime,
    end: datetime,
) -> Answers:
    window = time_range_pb2.TimeRange()
    window.start_time.FromDatetime(start)
    window.end_time.FromDatetime(end)
    quality = await stub.GetLeadQuality(pb.GetLeadQualityRequest(by_brand=True), metadata=metadata)
    attribution = await stub.GetAttributionSummary(
        pb.GetAttributionSummaryRequest(
            # Purchases only: the opportunity and customer stages are conversions too, and
            # would count each buyer again without revenue.
            range=window,
            models=MODELS,
            group_by=rt.DIMENSION_CHANNEL,
            limit=5,
            conversion_types=["purchase"],
        ),
        metadata=metadata,
    )
    portfolio = await stub.GetPortfolioMetrics(
        pb.GetPortfolioMetricsRequest(range=window), metadata=metadata
    )
    insights = await stub.GetSourceInsights(
        pb.GetSourceInsightsRequest(range=window, dimensions=[rt.DIMENSION_SOURCE]),
        metadata=metadata,
    )
    # The current week: profiles, stages and routing decisions are dated when the demo sends
    # them (now), only the behaviour is back-dated.
    current = pb.GetWeeklyReportRequest()
    current.week_start.FromDatetime(end)
    weekly = await stub.GetWeeklyReport(current, metadata=metadata)
    return Answers(quality, attribution, portfolio, insights, weekly)


def grade_table(quality: pb.GetLeadQualityResponse) -> Table:
    table = Table(title="Leads by grade and brand", title_justify="left")
    table.add_column("brand")
    for grade in GRADES:
        table.add_column(_grade_name(grade), justify="right")
    table.add_column("leads", justify="right")
    table.add_column("mean score", justify="right")
    for row in [*quality.brands, quality.total]:
        counts = {g.grade: g.count for g in row.grades}
        table.add_row(
            row.brand_id or "all brands",
            *[str(counts.get(grade, 0)) for grade in GRADES],
            str(row.lead_count),
            f"{row.average_score:.1f}",
            style="bold" if not row.brand_id else None,
        )
    return table


def attribution_table(answer: pb.GetAttributionSummaryResponse) -> Table:
    table = Table(
        title=f"Top channels by attributed revenue ({answer.conversion_count} purchases)",
        title_justify="left",
    )
    table.add_column("model")
    table.add_column("channel")
    table.add_column("conversions", justify="right")
    table.add_column("revenue", justify="right")
    table.add_column("share", justify="right")
    for summary in answer.models:
        rows = sorted(summary.rows, key=lambda r: -_money(r.attributed_value))[:3]
        for i, row in enumerate(rows):
            table.add_row(
                _model_name(summary.model) if i == 0 else "",
                row.key or "(none)",
                f"{row.attributed_conversions:.1f}",
                f"${_money(row.attributed_value):,.0f}",
                f"{row.share_of_conversions:.0%}",
                end_section=i == len(rows) - 1,
            )
    return table


def routing_table(portfolio: pb.GetPortfolioMetricsResponse) -> Table:
    table = Table(title="Routing outcomes", title_justify="left")
    for name in ("brand", "new leads", "routed in", "sent to other brands", "SLA breaches"):
        table.add_column(name, justify="left" if name == "brand" else "right")
    table.add_column("hot now", justify="right")
    table.add_column("revenue", justify="right")
    for row in [*portfolio.brands, portfolio.total]:
        table.add_row(
            row.brand_id or "all brands",
            str(row.new_leads),
            str(row.routed_in),
            str(row.routed_out),
            str(row.sla_breaches),
            str(row.hot_leads),
            f"${_money(row.revenue):,.0f}",
            style="bold" if not row.brand_id else None,
        )
    return table


def insights_table(insights: pb.GetSourceInsightsResponse, limit: int = 5) -> Table:
    table = Table(title="Top insights", title_justify="left", show_header=False)
    table.add_column("#", justify="right")
    table.add_column("finding")
    for i, finding in enumerate(insights.findings[:limit], start=1):
        table.add_row(str(i), finding.text)
    if not insights.findings:
        table.add_row("", "no significant differences yet")
    return table


def _money(amounts: Iterable[money_pb2.Money]) -> float:
    """The USD amount of a per-currency list (the demo sells in dollars)."""
    return sum(m.units + m.nanos / 1e9 for m in amounts if m.currency_code == "USD")


def _grade_name(grade: lead_pb2.Grade.ValueType) -> str:
    return lead_pb2.Grade.Name(grade).removeprefix("GRADE_").replace("_PLUS", "+")


def _model_name(model: at.AttributionModel.ValueType) -> str:
    return (
        at.AttributionModel.Name(model).removeprefix("ATTRIBUTION_MODEL_").replace("_", " ").lower()
    )
