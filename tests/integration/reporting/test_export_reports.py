"""Export of funnel drop-offs and of the business reports over data pushed through ingest,
scoring and attribution: each export holds, row for row, what the report's RPC answers
(one row per leaf item, the parent's fields repeated); bad requests name their field."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from ingest_support import event
from reporting_support import full_suite

from leadflow.common.v1 import event_type_pb2, time_range_pb2
from leadflow.ingest.v1 import ingest_service_pb2 as ingest_pb
from leadflow.ingest.v1 import profile_pb2
from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow.reporting.v1 import reporting_service_pb2 as pb
from leadflow_reporting.api import export_reports as er

pytestmark = pytest.mark.integration

BRANDS = ("modumind", "stacksense")
SOURCES = ("email", "google", "twitter")
LEADS = 36


def span(start: datetime, end: datetime) -> time_range_pb2.TimeRange:
    r = time_range_pb2.TimeRange()
    r.start_time.FromDatetime(start)
    r.end_time.FromDatetime(end)
    return r


def _events(start: datetime) -> list:
    out = []
    for i in range(LEADS):
        lead, brand, source = f"lead-{i}", BRANDS[i % 2], SOURCES[i % 3]
        visit = start + timedelta(hours=i)
        out.append(
            event(
                f"pv-{i}",
                lead_id=lead,
                brand_id=brand,
                occurred_at=visit,
                session_id=f"s-{i}",
                marketing={"channel": source, "source": source},
                properties={"exp": "control" if i % 2 else "b"},
            )
        )
        out.append(
            event(
                f"post-{i}",
                type="social_interaction",
                lead_id=lead,
                brand_id=brand,
                occurred_at=start + timedelta(hours=i % 5, minutes=i),
                properties={"engagement": 10 + i % 4},
            )
        )
        if i % 3 != 2:  # twitter never buys
            out.append(
                event(
                    f"buy-{i}",
                    type="purchase",
                    lead_id=lead,
                    brand_id=brand,
                    occurred_at=visit + timedelta(minutes=5),
                    session_id=f"s-{i}",
                    value=(20 + i, 0, "USD"),
                    properties={"mrr": 10},
                )
            )
    return out


async def export(s, fmt: int = pb.EXPORT_FORMAT_JSON_LINES, **what) -> tuple[list, str]:
    data = b""
    name = ""
    async for m in s.reporting.Export(pb.ExportRequest(format=fmt, **what), metadata=s.metadata):
        if m.WhichOneof("payload") == "chunk":
            data += m.chunk
        else:
            name = m.finished.suggested_file_name
            lines = len(data.decode().splitlines())
            assert m.finished.row_count == lines - (fmt == pb.EXPORT_FORMAT_CSV)
    if fmt == pb.EXPORT_FORMAT_JSON_LINES:
        return [json.loads(line) for line in data.decode().splitlines()], name
    return list(csv.DictReader(io.StringIO(data.decode(), newline=""))), name


async def test_new_report_exports_hold_their_rpc_answers(settings) -> None:
    start = (datetime.now(UTC) - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    window = span(start - timedelta(days=1), datetime.now(UTC) + timedelta(hours=1))
    async with full_suite(settings) as s:
        md, r = s.metadata, s.reporting
        for i in range(LEADS):
            await s.upstream.ingest.Identify(
                ingest_pb.IdentifyRequest(
                    lead_id=f"lead-{i}",
                    profile=profile_pb2.LeadProfile(home_brand_id=BRANDS[i % 2]),
                ),
                metadata=md,
            )
        await s.track(_events(start))
        await s.applied()

        # Drop-offs: every subject who viewed a page and did not buy, as the RPC lists them.
        funnel = rt.FunnelDefinition(range=window)
        for t in (event_type_pb2.EVENT_TYPE_PAGE_VIEW, event_type_pb2.EVENT_TYPE_PURCHASE):
            funnel.steps.add(event=rt.EventSelector(event_type=t))
        listed = await r.ListFunnelDropOffs(
            pb.ListFunnelDropOffsRequest(funnel=funnel, step_index=1, page={"page_size": 1000}),
            metadata=md,
        )
        assert listed.total_count == LEADS // 3
        rows, name = await export(
            s,
            pb.EXPORT_FORMAT_CSV,
            funnel_drop_offs=pb.ListFunnelDropOffsRequest(
                funnel=funnel, step_index=1, page={"page_size": 2}
            ),
        )
        assert [(x["lead_id"], x["last_step_index"]) for x in rows] == [
            (d.subject.lead_id, str(d.last_step_index)) for d in listed.drop_offs
        ]
        assert {x["total_count"] for x in rows} == {str(LEADS // 3)}
        assert name.startswith("funnel_drop_offs_") and name.endswith(".csv")

        # Lead quality: per breakdown its grades, then per breakdown its temperatures.
        request = pb.GetLeadQualityRequest(by_brand=True)
        quality = await r.GetLeadQuality(request, metadata=md)
        rows, _ = await export(s, lead_quality=request)
        parts = [quality.total, *quality.brands]
        assert [(x["brand_id"], x["dimension"], x["value"], x["count"]) for x in rows] == [
            (b.brand_id, "grade", er.GRADES[g.grade], g.count) for b in parts for g in b.grades
        ] + [
            (b.brand_id, "temperature", er.TEMPERATURES[t.temperature], t.count)
            for b in parts
            for t in b.temperatures
        ]
        assert rows[0]["total"] is True and rows[0]["lead_count"] == LEADS

        request = pb.GetLifecycleFunnelRequest(range=window)
        life = await r.GetLifecycleFunnel(request, metadata=md)
        rows, _ = await export(s, lifecycle_funnel=request)
        assert [(x["stage"], x["reached_count"], x["current_count"]) for x in rows] == [
            (er.STAGES[st.stage], st.reached_count, st.current_count) for st in life.stages
        ]
        assert rows[0]["stage"] == "new" and rows[0]["cohort_size"] == life.cohort_size > 0

        request = pb.GetEngagementRequest(range=window)
        engagement = await r.GetEngagement(request, metadata=md)
        rows, _ = await export(s, engagement=request)
        assert len(rows) >= 3
        assert [(x["channel"], x["event_type"], x["events"]) for x in rows] == [
            (c.channel, _type(c.event_type), c.events) for c in engagement.cells
        ]

        request = pb.GetAttributionSummaryRequest(range=window)
        summary = await r.GetAttributionSummary(request, metadata=md)
        rows, _ = await export(s, attribution_summary=request)
        assert [(x["model"], x["key"], x["attributed_conversions"]) for x in rows] == [
            (er.MODELS[m.model], row.key, row.attributed_conversions)
            for m in summary.models
            for row in m.rows
        ]
        assert {x["model"] for x in rows} == {"first_touch", "last_touch", "linear"}

        request = pb.GetSourceInsightsRequest(range=window, min_participants=5)
        insights = await r.GetSourceInsights(request, metadata=md)
        rows, _ = await export(s, source_insights=request)
        assert [
            (x["dimension"], x["value"], x["participants"], x["conversions"], x["z"]) for x in rows
        ] == [
            (
                er.DIMENSIONS[b.dimension],
                g.value,
                g.participants,
                g.conversions,
                g.versus_rest.z if g.HasField("versus_rest") else None,
            )
            for b in insights.breakdowns
            for g in b.groups
        ]
        assert {x["dimension"] for x in rows} == {"source", "channel"}

        request = pb.GetBestPostingHourRequest(range=window, min_sample=2)
        posting = await r.GetBestPostingHour(request, metadata=md)
        rows, _ = await export(s, best_posting_hour=request)
        assert [(x["hour"], x["sample_size"], x["mean_engagement"]) for x in rows] == [
            (h.hour, h.sample_size, h.mean_engagement) for h in posting.overall.hours
        ]
        assert {x["best_hour"] for x in rows} == {posting.overall.best_hour}

        request = pb.GetAbTestRequest(
            experiment_key="exp",
            variant_property="exp",
            control_variant="control",
            conversion_event=rt.EventSelector(event_type=event_type_pb2.EVENT_TYPE_PURCHASE),
            range=window,
            min_sample_per_variant=5,
        )
        ab = await r.GetAbTest(request, metadata=md)
        rows, _ = await export(s, ab_test=request)
        assert [(x["variant"], x["participants"], x["conversions"], x["lift"]) for x in rows] == [
            (v.variant, v.participants, v.conversions, v.lift if v.HasField("lift") else None)
            for v in ab.variants
        ]
        assert sum(x["participants"] for x in rows) == LEADS

        request = pb.GetPortfolioMetricsRequest(range=window)
        portfolio = await r.GetPortfolioMetrics(request, metadata=md)
        rows, _ = await export(s, pb.EXPORT_FORMAT_CSV, portfolio_metrics=request)
        assert [(x["brand_id"], x["total"], x["conversions"], x["revenue"]) for x in rows] == [
            (b.brand_id, "false", str(b.conversions), _money(b.revenue)) for b in portfolio.brands
        ] + [("", "true", str(portfolio.total.conversions), _money(portfolio.total.revenue))]
        assert rows[-1]["conversions"] == str(LEADS - LEADS // 3)

        # Bad requests name their field under the export's case.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await export(s, ab_test=pb.GetAbTestRequest(range=window))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "ab_test.experiment_key" in (err.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await export(
                s, funnel_drop_offs=pb.ListFunnelDropOffsRequest(funnel=funnel, step_index=5)
            )
        assert "funnel_drop_offs.step_index" in (err.value.details() or "")


def _type(value: int) -> str:
    return event_type_pb2.EventType.Name(value).removeprefix("EVENT_TYPE_").lower()


def _money(values) -> str:
    out = []
    for m in sorted(values, key=lambda m: m.currency_code):
        text = f"{m.units}.{m.nanos:09d}".rstrip("0").rstrip(".")
        out.append(f"{text} {m.currency_code}")
    return "; ".join(out)
