"""Report answers as protos."""

from __future__ import annotations

from decimal import Decimal

from google.protobuf import duration_pb2, timestamp_pb2

from leadflow.common.v1 import marketing_pb2, money_pb2, subject_pb2
from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow.reporting.v1 import reporting_service_pb2 as pb
from leadflow_reporting.domain.funnel_stats import SeriesStats
from leadflow_reporting.domain.journey import CONVERSIONS, MilestoneKind, Trend
from leadflow_reporting.domain.retention import RetentionTable
from leadflow_reporting.funnels import DropOffPage, FunnelAnswer
from leadflow_reporting.journeys import JourneyAnswer
from leadflow_reporting.paths import PathsAnswer
from leadflow_reporting.realtime import RealTimeAnswer


def duration(us: float) -> duration_pb2.Duration:
    whole = round(us)
    return duration_pb2.Duration(seconds=whole // 1_000_000, nanos=(whole % 1_000_000) * 1000)


def timestamp(us: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=us // 1_000_000, nanos=(us % 1_000_000) * 1000)


def funnel_series(
    stats: SeriesStats, labels: tuple[str, ...], value: str = "", other: bool = False
) -> rt.FunnelSeries:
    out = rt.FunnelSeries(breakdown_value=value, other=other)
    for k, step in enumerate(stats.steps):
        row = out.steps.add(
            step_index=k,
            label=labels[k],
            count=step.count,
            conversion_from_first=step.conversion_from_first,
            conversion_from_previous=step.conversion_from_previous,
            dropped_from_previous=step.dropped_from_previous,
        )
        if step.median_from_previous_us is not None:
            row.median_time_from_previous.CopyFrom(duration(step.median_from_previous_us))
        if step.average_from_previous_us is not None:
            row.average_time_from_previous.CopyFrom(duration(step.average_from_previous_us))
    if stats.median_to_convert_us is not None:
        out.median_time_to_convert.CopyFrom(duration(stats.median_to_convert_us))
    return out


def funnel_response(answer: FunnelAnswer) -> pb.RunFunnelResponse:
    labels = answer.query.labels
    return pb.RunFunnelResponse(
        overall=funnel_series(answer.overall, labels),
        breakdown_series=[
            funnel_series(stats, labels, group.value, group.other)
            for group, stats in answer.breakdown
        ],
        excluded_subjects=answer.excluded_subjects,
        conversion_window=duration(answer.query.window_us),
    )


def drop_offs_response(page: DropOffPage) -> pb.ListFunnelDropOffsResponse:
    out = pb.ListFunnelDropOffsResponse(total_count=page.total_count)
    out.page.next_page_token = page.next_page_token
    for d in page.drop_offs:
        out.drop_offs.add(
            subject=subject_pb2.SubjectRef(
                lead_id=d.subject.lead_id, anonymous_id=d.subject.anonymous_id
            ),
            last_step_index=d.last_step_index,
            last_step_time=timestamp(d.last_step_time_us),
            breakdown_value=d.breakdown_value,
            home_brand_id=d.subject.home_brand_id,
        )
    return out


def money(currency: str, value: Decimal) -> money_pb2.Money:
    units = int(value)  # toward zero; nanos carry the same sign
    return money_pb2.Money(
        currency_code=currency, units=units, nanos=int((value - units) * 1_000_000_000)
    )


def real_time_response(answer: RealTimeAnswer) -> pb.GetRealTimeResponse:
    w = answer.window
    out = pb.GetRealTimeResponse(
        active_sessions=answer.active_sessions,
        active_subjects=answer.active_subjects,
        as_of=timestamp(answer.as_of_us),
    )
    out.range.start_time.CopyFrom(timestamp(w.start_us))
    out.range.end_time.CopyFrom(timestamp(w.end_us))
    out.bucket.seconds = w.bucket_minutes * 60
    starts = [timestamp(s) for s in w.starts]
    for s in answer.series:
        series = out.series.add(
            event_type=s.event_type, custom_event_name=s.custom_name, total=s.total
        )
        for start, n in zip(starts, s.points, strict=True):
            series.points.add(bucket_start=start, count=n)
    out.conversions.count = answer.conversions
    for start, n in zip(starts, answer.conversion_points, strict=True):
        out.conversions.points.add(bucket_start=start, count=n)
    for currency, value in answer.value_by_currency:
        out.conversions.value.append(money(currency, value))
    for e in answer.performance:
        out.performance.add(
            endpoint=e.endpoint,
            sample_count=e.samples,
            p50_latency_ms=e.p50_ms,
            p95_latency_ms=e.p95_ms,
            p99_latency_ms=e.p99_ms,
            error_count=e.errors,
            error_rate=e.errors / e.samples if e.samples else 0.0,
        )
    return out


def _node_id(step: int, name: str) -> str:
    return f"{step}_{name}"


def paths_response(answer: PathsAnswer) -> pb.GetPathsResponse:
    g = answer.graph
    out = pb.GetPathsResponse(path_count=g.path_count)
    for n in g.nodes:
        name = answer.name(n.item)
        out.nodes.add(
            id=_node_id(n.step, name),
            step=n.step,
            name=name,
            count=n.count,
            drop_off_count=n.drop_off,
        )
    for e in g.edges:
        out.edges.add(
            source_id=_node_id(e.source[0], answer.name(e.source[1])),
            target_id=_node_id(e.target[0], answer.name(e.target[1])),
            count=e.count,
            median_time_between=duration(e.median_us),
        )
    for p in answer.pages:
        out.most_visited_pages.add(
            page=answer.name(p.page),
            views=p.views,
            unique_subjects=p.unique_subjects,
            entrances=p.entrances,
            exits=p.exits,
            bounces=p.bounces,
        )
    s = answer.sessions
    out.sessions.session_count = s.count
    if s.median_us is not None and s.average_us is not None and s.p90_us is not None:
        out.sessions.median_duration.CopyFrom(duration(s.median_us))
        out.sessions.average_duration.CopyFrom(duration(s.average_us))
        out.sessions.p90_duration.CopyFrom(duration(s.p90_us))
    out.sessions.average_events_per_session = s.events_per_session
    out.sessions.sessions_with_page_views = s.with_page_views
    out.sessions.bounced_sessions = s.bounced
    out.sessions.bounce_rate = s.bounce_rate
    return out


def retention_response(
    result: RetentionTable, period: rt.CohortPeriod.ValueType
) -> pb.GetRetentionResponse:
    out = pb.GetRetentionResponse(average_share=result.average_share, period=period)
    for c in result.cohorts:
        row = out.cohorts.add(
            cohort_start=timestamp(c.start_us),
            size=c.size,
            converted_subjects=c.converted,
            conversion_rate=c.converted / c.size if c.size else 0.0,
        )
        for k, (n, complete) in enumerate(zip(c.active, c.complete, strict=True)):
            row.cells.add(
                period=k, active=n, share=n / c.size if c.size else 0.0, complete=complete
            )
        for currency, value in c.revenue.items():
            row.revenue.append(money(currency, value))
    for a in result.activity:
        out.activity.add(
            period_start=timestamp(a.start_us),
            active_subjects=a.active,
            first_time_subjects=a.first_time,
            recurring_subjects=a.recurring,
        )
    return out


_MILESTONES = {
    MilestoneKind.FIRST_SEEN: rt.MILESTONE_KIND_FIRST_SEEN,
    MilestoneKind.IDENTIFIED: rt.MILESTONE_KIND_IDENTIFIED,
    MilestoneKind.ALIASED: rt.MILESTONE_KIND_ALIASED,
    MilestoneKind.FIRST_TOUCH: rt.MILESTONE_KIND_FIRST_TOUCH,
    MilestoneKind.STAGE_CHANGED: rt.MILESTONE_KIND_STAGE_CHANGED,
    MilestoneKind.THRESHOLD_CROSSED: rt.MILESTONE_KIND_THRESHOLD_CROSSED,
    MilestoneKind.CONVERSION: rt.MILESTONE_KIND_CONVERSION,
    MilestoneKind.ROUTED: rt.MILESTONE_KIND_ROUTED,
    MilestoneKind.FIRST_MEETING: rt.MILESTONE_KIND_FIRST_MEETING,
}
_TRENDS = {
    Trend.INCREASING: rt.ENGAGEMENT_TREND_INCREASING,
    Trend.STABLE: rt.ENGAGEMENT_TREND_STABLE,
    Trend.DECLINING: rt.ENGAGEMENT_TREND_DECLINING,
}


def journey_response(a: JourneyAnswer) -> pb.GetJourneyResponse:
    out = pb.GetJourneyResponse(
        subject=subject_pb2.SubjectRef(lead_id=a.lead_id, anonymous_id=a.anonymous_id),
        merged_anonymous_ids=a.merged_anonymous_ids,
        home_brand_id=a.home_brand_id,
        event_count=a.event_count,
        session_count=a.session_count,
        conversion_count=a.conversion_count,
        revenue=[money(c, v) for c, v in a.revenue],
        engagement_trend=_TRENDS[a.trend],
        recent_event_count=a.recent,
        previous_event_count=a.previous,
        churn_risk=a.churn_risk,
    )
    if a.score is not None:
        out.score = a.score
        out.grade = a.grade  # type: ignore[assignment]
        out.temperature = a.temperature  # type: ignore[assignment]
    out.stage = a.stage  # type: ignore[assignment]
    if a.first_seen_us is not None and a.last_seen_us is not None:
        out.first_seen.CopyFrom(timestamp(a.first_seen_us))
        out.last_seen.CopyFrom(timestamp(a.last_seen_us))
    for m in a.milestones:
        row = out.milestones.add(
            kind=_MILESTONES[m.kind],
            occurred_at=timestamp(m.time_us),
            description=m.description,
            event_id=m.event_id,
            brand_id=m.brand_id,
            stage=m.stage,
            grade=m.grade,
        )
        if m.value is not None and m.currency:
            row.value.CopyFrom(money(m.currency, m.value))
    for f in a.factors:
        out.churn_factors.add(code=f.code, description=f.description, contribution=f.contribution)
    for r in a.timeline:
        event = out.timeline.add(
            event_id=r["event_id"],
            occurred_at=timestamp(r["t"]),
            event_type=r["event_type"],
            custom_event_name=r["custom_name"],
            brand_id=r["brand_id"],
            session_id=r["session_id"],
            conversion=r["event_type"] in CONVERSIONS,
            machine=r["machine"],
            page_url=r["page_url"],
        )
        context = {c: r[c] for c in ("channel", "source", "medium", "campaign", "content", "term")}
        if any(context.values()):
            event.marketing.CopyFrom(marketing_pb2.MarketingContext(**context))
        if r["value_units"] is not None and r["currency_code"]:
            event.value.CopyFrom(
                money_pb2.Money(
                    units=r["value_units"],
                    nanos=r["value_nanos"] or 0,
                    currency_code=r["currency_code"],
                )
            )
        if r["properties"]:
            event.properties.update(r["properties"])
    out.page.next_page_token = a.next_page_token
    return out
