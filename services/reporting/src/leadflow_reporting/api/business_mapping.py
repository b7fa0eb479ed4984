"""The business reports' answers as protos."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from leadflow.common.v1 import money_pb2
from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow.reporting.v1 import reporting_service_pb2 as pb
from leadflow_reporting.api.mapping import duration, money, timestamp
from leadflow_reporting.business import (
    AttributionAnswer,
    BrandFigures,
    EngagementAnswer,
    InsightsAnswer,
    LeadQualityAnswer,
    PortfolioAnswer,
    PostingAnswer,
    kpi_changes,
)
from leadflow_reporting.domain import kpis
from leadflow_reporting.domain.experiments import AbAnswer, HourSeries
from leadflow_reporting.domain.insights import Finding
from leadflow_reporting.domain.quality import LifecycleAnswer, Quality
from leadflow_reporting.domain.stats import ZTest


def _monies(values: Mapping[str, Decimal]) -> list[money_pb2.Money]:
    return [money(c, v) for c, v in sorted(values.items()) if c]


def quality(q: Quality) -> rt.LeadQualityBreakdown:
    out = rt.LeadQualityBreakdown(
        brand_id=q.brand_id,
        lead_count=q.lead_count,
        scored_count=q.scored_count,
        average_score=q.average_score,
        median_score=q.median_score,
    )
    for grade, count, share in q.grades:
        out.grades.add(grade=grade, count=count, share=share)
    for temperature, count, share in q.temperatures:
        out.temperatures.add(temperature=temperature, count=count, share=share)
    for i, count in enumerate(q.histogram):
        out.score_histogram.add(lower=10.0 * i, upper=10.0 * (i + 1), count=count)
    return out


def lead_quality_response(a: LeadQualityAnswer) -> pb.GetLeadQualityResponse:
    return pb.GetLeadQualityResponse(total=quality(a.total), brands=[quality(b) for b in a.brands])


def lifecycle_response(a: LifecycleAnswer) -> pb.GetLifecycleFunnelResponse:
    out = pb.GetLifecycleFunnelResponse(cohort_size=a.cohort_size)
    for s in a.stages:
        row = out.stages.add(
            stage=s.stage,
            current_count=s.current,
            entered_count=s.entered,
            reached_count=s.reached,
            conversion_from_previous=s.from_previous,
            conversion_from_first=s.from_first,
            exited_count=s.exited,
        )
        if s.median_in_stage_us is not None:
            row.median_time_in_stage.CopyFrom(duration(s.median_in_stage_us))
    for a_, b, n in a.transitions:
        out.transitions.add(from_stage=a_, to_stage=b, count=n)
    return out


def engagement_response(a: EngagementAnswer) -> pb.GetEngagementResponse:
    total = a.total_events
    out = pb.GetEngagementResponse(
        total_events=total,
        unique_subjects=a.unique_subjects,
        events_per_subject=total / a.unique_subjects if a.unique_subjects else 0.0,
    )
    for event_type, custom, events, subjects in a.by_type:
        out.by_type.add(
            event_type=event_type,
            custom_event_name=custom,
            events=events,
            unique_subjects=subjects,
            share=events / total if total else 0.0,
        )
    for channel, events, subjects, sessions, conversions in a.by_channel:
        out.by_channel.add(
            channel=channel,
            events=events,
            unique_subjects=subjects,
            sessions=sessions,
            conversions=conversions,
            share=events / total if total else 0.0,
        )
    for channel, event_type, custom, events, subjects in a.cells:
        out.cells.add(
            channel=channel,
            event_type=event_type,
            custom_event_name=custom,
            events=events,
            unique_subjects=subjects,
        )
    e = a.email
    sent, bounced = e.get("sent", 0), e.get("bounced", 0)
    delivered = sent - bounced
    opened, clicked, replied = e.get("opened", 0), e.get("clicked", 0), e.get("replied", 0)
    out.email.CopyFrom(
        rt.EmailEngagement(
            sent=sent,
            bounced=bounced,
            opened=opened,
            machine_opens=e.get("machine_opens", 0),
            clicked=clicked,
            machine_clicks=e.get("machine_clicks", 0),
            replied=replied,
            open_rate=opened / delivered if delivered > 0 else 0.0,
            click_rate=clicked / delivered if delivered > 0 else 0.0,
            click_to_open_rate=clicked / opened if opened else 0.0,
            reply_rate=replied / delivered if delivered > 0 else 0.0,
            bounce_rate=bounced / sent if sent else 0.0,
        )
    )
    for day, count in a.daily:
        out.daily.add(bucket_start=timestamp(day), count=count)
    return out


def attribution_response(a: AttributionAnswer) -> pb.GetAttributionSummaryResponse:
    out = pb.GetAttributionSummaryResponse(
        conversion_count=a.conversion_count,
        conversion_value=_monies(a.conversion_value),
        unattributed_count=a.unattributed,
    )
    for m in a.models:
        summary = out.models.add(
            model=m.model, total_conversions=m.total, total_value=_monies(m.total_value)
        )
        for r in m.rows:
            summary.rows.add(
                key=r.key,
                attributed_conversions=r.conversions,
                attributed_value=_monies(r.value),
                share_of_conversions=r.conversions / m.total if m.total else 0.0,
                touchpoints=r.touchpoints,
                conversions_touched=r.touched,
            )
    return out


def test(t: ZTest) -> rt.SignificanceTest:
    return rt.SignificanceTest(
        z=t.z, p_value=t.p_value, confidence=t.confidence, significant=t.significant
    )


def finding(f: Finding) -> rt.Finding:
    out = rt.Finding(
        text=f.text,
        kind=rt.FindingKind.ValueType(f.kind.value),
        impact=f.impact,
        dimension=rt.Dimension.ValueType(f.dimension),
        values=list(f.values),
        brand_id=f.brand_id,
    )
    if f.test is not None:
        out.test.CopyFrom(test(f.test))
    return out


KPI_SHORT: dict[int, str] = {int(v): k.removeprefix("KPI_").lower() for k, v in rt.Kpi.items()}


def kpi_change(c: kpis.KpiChange) -> rt.KpiChange:
    def value(v: float | Decimal) -> rt.KpiValue:
        if c.currency:
            return rt.KpiValue(money=money(c.currency, Decimal(v)))
        return rt.KpiValue(number=float(v))

    out = rt.KpiChange(
        kpi=rt.Kpi.ValueType(c.kpi),
        kpi_name=KPI_SHORT.get(c.kpi, ""),
        brand_id=c.brand_id,
        current=value(c.current),
        previous=value(c.previous),
        direction=rt.ChangeDirection.ValueType(c.direction),
        favourable=c.favourable,
    )
    if c.relative is not None:
        out.relative_change = c.relative
    return out


def insights_response(a: InsightsAnswer) -> pb.GetSourceInsightsResponse:
    out = pb.GetSourceInsightsResponse(
        findings=[finding(f) for f in a.findings],
        kpi_changes=[kpi_change(c) for c in a.kpi_changes],
    )
    out.previous_range.start_time.CopyFrom(timestamp(a.previous[0]))
    out.previous_range.end_time.CopyFrom(timestamp(a.previous[1]))
    for dimension, groups, overall in a.breakdowns:
        b = out.breakdowns.add(dimension=dimension, overall_conversion_rate=overall)
        for g in groups:
            row = b.groups.add(
                value=g.value,
                participants=g.participants,
                conversions=g.conversions,
                conversion_rate=g.rate,
                revenue=_monies(g.revenue),
                revenue_per_participant=_monies(
                    {c: v / g.participants for c, v in g.revenue.items()} if g.participants else {}
                ),
                below_minimum_sample=g.below_minimum,
            )
            if g.test is not None:
                row.versus_rest.CopyFrom(test(g.test))
    return out


def _hours(s: HourSeries) -> rt.PostingHourSeries:
    out = rt.PostingHourSeries(breakdown_value=s.value, no_best_hour_reason=s.reason)
    for h in s.hours:
        out.hours.add(
            hour=h.hour,
            sample_size=h.sample,
            mean_engagement=h.mean,
            total_engagement=h.total,
            eligible=h.eligible,
        )
    if s.best_hour is not None:
        out.best_hour = s.best_hour
    return out


def posting_response(a: PostingAnswer) -> pb.GetBestPostingHourResponse:
    return pb.GetBestPostingHourResponse(
        overall=_hours(a.overall),
        breakdown_series=[_hours(s) for s in a.series],
        post_count=a.posts,
        time_zone=a.time_zone,
    )


def ab_response(
    a: AbAnswer, experiment: str, confidence: float, minimum: int
) -> pb.GetAbTestResponse:
    out = pb.GetAbTestResponse(
        experiment_key=experiment,
        winner=a.winner,
        no_winner_reason=rt.NoWinnerReason.ValueType(a.no_winner.value),
        confidence_level=confidence,
        min_sample_per_variant=minimum,
        excluded_subjects=a.excluded,
        summary=a.summary,
    )
    if a.test is not None:
        out.test.CopyFrom(test(a.test))
    for v in a.variants:
        row = out.variants.add(
            variant=v.name,
            control=v.control,
            participants=v.participants,
            conversions=v.conversions,
            conversion_rate=v.rate,
            rate_lower=v.lower,
            rate_upper=v.upper,
            meets_minimum_sample=v.meets_minimum,
        )
        if v.lift is not None:
            row.lift = v.lift
        if v.versus_control is not None:
            row.versus_control.CopyFrom(test(v.versus_control))
    return out


def brand_metrics(f: BrandFigures) -> rt.BrandMetrics:
    return rt.BrandMetrics(
        brand_id=f.brand_id,
        new_leads=f.new_leads,
        total_leads=f.total_leads,
        active_subjects=f.active,
        conversions=f.conversions,
        conversion_rate=f.conversion_rate,
        revenue=_monies(f.revenue),
        mrr=_monies(f.mrr),
        arr=_monies(f.arr),
        routed_in=f.routed_in,
        routed_out=f.routed_out,
        sla_breaches=f.sla_breaches,
        hot_leads=f.hot_leads,
    )


def portfolio_response(
    now: PortfolioAnswer, before: PortfolioAnswer | None, previous: tuple[int, int] | None
) -> pb.GetPortfolioMetricsResponse:
    out = pb.GetPortfolioMetricsResponse(
        total=brand_metrics(now.total), brands=[brand_metrics(b) for b in now.brands]
    )
    if before is not None and previous is not None:
        earlier = {b.brand_id: b for b in before.brands}
        changes = kpi_changes(now.total, before.total)
        for b in now.brands:
            changes += kpi_changes(b, earlier.get(b.brand_id, BrandFigures(b.brand_id)))
        out.changes.extend(kpi_change(c) for c in changes)
        out.previous_range.start_time.CopyFrom(timestamp(previous[0]))
        out.previous_range.end_time.CopyFrom(timestamp(previous[1]))
    return out
