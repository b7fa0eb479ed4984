"""Exports of funnel drop-offs, the business reports and alerts: each request checked as its
RPC checks it, and each answer flattened into one row per leaf item (ExportRequest), read
from the very response the report's RPC gives. Enum values are written as their short
lower-case names ("a_plus", "first_touch", "source"), money as "12.5 EUR; 3 USD"."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from google.protobuf import timestamp_pb2

from leadflow.attribution.v1 import attribution_types_pb2 as at
from leadflow.common.v1 import lead_pb2
from leadflow.reporting.v1 import alerts_pb2
from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow.reporting.v1 import reporting_service_pb2 as pb
from leadflow_reporting.api import alert_requests, business_requests, requests
from leadflow_reporting.domain.export_format import Row, decimal_text

# The `what` cases exported here.
KINDS = (
    "funnel_drop_offs",
    "lead_quality",
    "lifecycle_funnel",
    "engagement",
    "attribution_summary",
    "source_insights",
    "best_posting_hour",
    "ab_test",
    "portfolio_metrics",
    "alerts",
)


def _names(enum: Any, prefix: str) -> Mapping[int, str]:
    """A generated enum's values (UNSPECIFIED left out) by short lower-case name."""
    return {int(v): k.removeprefix(prefix).lower() for k, v in enum.items() if int(v)}


GRADES = _names(lead_pb2.Grade, "GRADE_")
TEMPERATURES = _names(lead_pb2.Temperature, "TEMPERATURE_")
STAGES = _names(lead_pb2.LifecycleStage, "LIFECYCLE_STAGE_")
MODELS = _names(at.AttributionModel, "ATTRIBUTION_MODEL_")
DIMENSIONS = _names(rt.Dimension, "DIMENSION_")
KPIS = _names(rt.Kpi, "KPI_")
PERIODS = _names(alerts_pb2.AlertPeriod, "ALERT_PERIOD_")
DIRECTIONS = _names(alerts_pb2.ThresholdDirection, "THRESHOLD_DIRECTION_")


def _us(ts: timestamp_pb2.Timestamp) -> int:
    return ts.seconds * 1_000_000 + ts.nanos // 1000


def _span(request: Any) -> tuple[int | None, int | None]:
    if not request.HasField("range"):
        return None, None
    return _us(request.range.start_time), _us(request.range.end_time)


def plan(kind: str, request: Any) -> tuple[Any, int | None, int | None]:
    """The checked query of a request (InvalidArgument naming the request's fields), and
    the range for the file name."""
    if kind == "funnel_drop_offs":
        drop_offs = requests.drop_offs_query(request, paged=False)  # every row is streamed
        return drop_offs, drop_offs.funnel.start_us, drop_offs.funnel.end_us
    if kind == "alerts":
        alerts = alert_requests.list_alerts(request, paged=False)
        return alerts, alerts.start_us, alerts.end_us
    checks: dict[str, Callable[[Any], object]] = {
        "lead_quality": business_requests.lead_quality,
        "lifecycle_funnel": business_requests.ranged,
        "engagement": business_requests.engagement,
        "attribution_summary": business_requests.attribution_summary,
        "source_insights": business_requests.source_insights,
        "best_posting_hour": business_requests.best_posting_hour,
        "ab_test": business_requests.ab_test,
        "portfolio_metrics": business_requests.portfolio,
    }
    checks[kind](request)  # the report's answer checks it again, on the same rules
    if kind == "lead_quality" and not request.HasField("range"):
        return None, None, None
    return None, *_span(request)


# ---------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------


def _time(ts: timestamp_pb2.Timestamp) -> str:
    return ts.ToDatetime().strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _money(values: Iterable[Any]) -> str:
    return "; ".join(
        f"{decimal_text(m.units, m.nanos)} {m.currency_code}"
        for m in sorted(values, key=lambda m: m.currency_code)
    )


def _seconds(message: Any, field: str) -> float | None:
    if not message.HasField(field):
        return None
    d = getattr(message, field)
    return d.seconds + d.nanos / 1e9


DROP_OFF_COLUMNS = (
    "step_index",
    "lead_id",
    "anonymous_id",
    "home_brand_id",
    "last_step_index",
    "last_step_time",
    "breakdown_value",
    "total_count",
)


def drop_off_rows(step_index: int, r: pb.ListFunnelDropOffsResponse) -> Iterator[Row]:
    for d in r.drop_offs:
        yield (
            step_index,
            d.subject.lead_id,
            d.subject.anonymous_id,
            d.home_brand_id,
            d.last_step_index,
            _time(d.last_step_time),
            d.breakdown_value,
            r.total_count,
        )


LEAD_QUALITY_COLUMNS = (
    "brand_id",
    "total",
    "lead_count",
    "scored_count",
    "average_score",
    "median_score",
    "dimension",
    "value",
    "count",
    "share",
)


def lead_quality_rows(r: pb.GetLeadQualityResponse) -> Iterator[Row]:
    """Per breakdown (the total first, then each brand) its grades, then per breakdown its
    temperatures."""
    breakdowns = [(True, r.total)] + [(False, b) for b in r.brands]

    def head(total: bool, b: rt.LeadQualityBreakdown) -> tuple[Any, ...]:
        return (b.brand_id, total, b.lead_count, b.scored_count, b.average_score, b.median_score)

    for total, b in breakdowns:
        for g in b.grades:
            yield (*head(total, b), "grade", GRADES.get(g.grade, ""), g.count, g.share)
    for total, b in breakdowns:
        for t in b.temperatures:
            yield (
                *head(total, b),
                "temperature",
                TEMPERATURES.get(t.temperature, ""),
                t.count,
                t.share,
            )


LIFECYCLE_COLUMNS = (
    "stage",
    "current_count",
    "entered_count",
    "reached_count",
    "exited_count",
    "conversion_from_previous",
    "conversion_from_first",
    "median_seconds_in_stage",
    "cohort_size",
)


def lifecycle_rows(r: pb.GetLifecycleFunnelResponse) -> Iterator[Row]:
    for s in r.stages:
        yield (
            STAGES.get(s.stage, ""),
            s.current_count,
            s.entered_count,
            s.reached_count,
            s.exited_count,
            s.conversion_from_previous,
            s.conversion_from_first,
            _seconds(s, "median_time_in_stage"),
            r.cohort_size,
        )


ENGAGEMENT_COLUMNS = (
    "channel",
    "event_type",
    "custom_event_name",
    "events",
    "unique_subjects",
    "total_events",
)


def engagement_rows(r: pb.GetEngagementResponse, type_names: Mapping[int, str]) -> Iterator[Row]:
    for c in r.cells:
        yield (
            c.channel,
            type_names.get(c.event_type, ""),
            c.custom_event_name,
            c.events,
            c.unique_subjects,
            r.total_events,
        )


ATTRIBUTION_COLUMNS = (
    "model",
    "key",
    "attributed_conversions",
    "attributed_value",
    "share_of_conversions",
    "touchpoints",
    "conversions_touched",
    "model_total_conversions",
    "conversion_count",
    "unattributed_count",
)


def attribution_rows(r: pb.GetAttributionSummaryResponse) -> Iterator[Row]:
    for m in r.models:
        for row in m.rows:
            yield (
                MODELS.get(m.model, ""),
                row.key,
                row.attributed_conversions,
                _money(row.attributed_value),
                row.share_of_conversions,
                row.touchpoints,
                row.conversions_touched,
                m.total_conversions,
                r.conversion_count,
                r.unattributed_count,
            )


INSIGHTS_COLUMNS = (
    "dimension",
    "value",
    "participants",
    "conversions",
    "conversion_rate",
    "revenue",
    "revenue_per_participant",
    "below_minimum_sample",
    "z",
    "p_value",
    "significant",
    "overall_conversion_rate",
)


def insights_rows(r: pb.GetSourceInsightsResponse) -> Iterator[Row]:
    for b in r.breakdowns:
        for g in b.groups:
            tested = g.HasField("versus_rest")
            yield (
                DIMENSIONS.get(b.dimension, ""),
                g.value,
                g.participants,
                g.conversions,
                g.conversion_rate,
                _money(g.revenue),
                _money(g.revenue_per_participant),
                g.below_minimum_sample,
                g.versus_rest.z if tested else None,
                g.versus_rest.p_value if tested else None,
                g.versus_rest.significant if tested else None,
                b.overall_conversion_rate,
            )


POSTING_COLUMNS = (
    "series",
    "breakdown_value",
    "hour",
    "sample_size",
    "mean_engagement",
    "total_engagement",
    "eligible",
    "best_hour",
    "post_count",
    "time_zone",
)


def posting_rows(r: pb.GetBestPostingHourResponse) -> Iterator[Row]:
    series = [("overall", r.overall)] + [("breakdown", s) for s in r.breakdown_series]
    for name, s in series:
        best = s.best_hour if s.HasField("best_hour") else None
        for h in s.hours:
            yield (
                name,
                s.breakdown_value,
                h.hour,
                h.sample_size,
                h.mean_engagement,
                h.total_engagement,
                h.eligible,
                best,
                r.post_count,
                r.time_zone,
            )


AB_COLUMNS = (
    "experiment_key",
    "variant",
    "control",
    "participants",
    "conversions",
    "conversion_rate",
    "rate_lower",
    "rate_upper",
    "lift",
    "z_versus_control",
    "p_value_versus_control",
    "significant_versus_control",
    "meets_minimum_sample",
    "winner",
    "confidence_level",
)


def ab_rows(r: pb.GetAbTestResponse) -> Iterator[Row]:
    for v in r.variants:
        tested = v.HasField("versus_control")
        yield (
            r.experiment_key,
            v.variant,
            v.control,
            v.participants,
            v.conversions,
            v.conversion_rate,
            v.rate_lower,
            v.rate_upper,
            v.lift if v.HasField("lift") else None,
            v.versus_control.z if tested else None,
            v.versus_control.p_value if tested else None,
            v.versus_control.significant if tested else None,
            v.meets_minimum_sample,
            r.winner,
            r.confidence_level,
        )


PORTFOLIO_COLUMNS = (
    "brand_id",
    "total",
    "new_leads",
    "total_leads",
    "active_subjects",
    "conversions",
    "conversion_rate",
    "revenue",
    "mrr",
    "arr",
    "routed_in",
    "routed_out",
    "sla_breaches",
    "hot_leads",
)


def portfolio_rows(r: pb.GetPortfolioMetricsResponse) -> Iterator[Row]:
    """One row per brand, the total (all brands, or the listed ones) last."""
    for total, b in [(False, b) for b in r.brands] + [(True, r.total)]:
        yield (
            b.brand_id,
            total,
            b.new_leads,
            b.total_leads,
            b.active_subjects,
            b.conversions,
            b.conversion_rate,
            _money(b.revenue),
            _money(b.mrr),
            _money(b.arr),
            b.routed_in,
            b.routed_out,
            b.sla_breaches,
            b.hot_leads,
        )


ALERT_COLUMNS = (
    "alert_id",
    "rule_id",
    "config_version",
    "kpi",
    "brand_id",
    "period_kind",
    "period_start",
    "period_end",
    "direction",
    "value",
    "threshold",
    "previous_value",
    "currency_code",
    "message",
    "raised_at",
)


def _value(v: rt.KpiValue) -> str | float | None:
    kind = v.WhichOneof("value")
    if kind == "money":
        return decimal_text(v.money.units, v.money.nanos)
    return v.number if kind == "number" else None


def alert_rows(alerts: Iterable[alerts_pb2.KpiAlert]) -> Iterator[Row]:
    for a in alerts:
        yield (
            a.alert_id,
            a.rule_id,
            a.config_version,
            KPIS.get(a.kpi, ""),
            a.brand_id,
            PERIODS.get(a.period_kind, ""),
            _time(a.period.start_time),
            _time(a.period.end_time),
            DIRECTIONS.get(a.direction, ""),
            _value(a.value),
            _value(a.threshold),
            _value(a.previous_value) if a.HasField("previous_value") else None,
            a.threshold.money.currency_code,
            a.message,
            _time(a.raised_at),
        )
