"""Funnel answers as protos."""

from __future__ import annotations

from google.protobuf import duration_pb2, timestamp_pb2

from leadflow.common.v1 import subject_pb2
from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow.reporting.v1 import reporting_service_pb2 as pb
from leadflow_reporting.domain.funnel_stats import SeriesStats
from leadflow_reporting.funnels import DropOffPage, FunnelAnswer


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
