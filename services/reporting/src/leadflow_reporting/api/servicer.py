"""The ReportingService gRPC adapter: check the request, call the use case, map the answer.
Reports not built yet answer UNIMPLEMENTED, naming themselves."""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc

from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow.reporting.v1 import reporting_service_pb2 as pb
from leadflow.reporting.v1 import reporting_service_pb2_grpc
from leadflow_platform.errors import FieldViolation, InvalidArgument, ServiceError
from leadflow_platform.grpc import current_principal
from leadflow_reporting.alerts import Alerts
from leadflow_reporting.api import alert_mapping as am
from leadflow_reporting.api import alert_requests as ar
from leadflow_reporting.api import business_mapping as bm
from leadflow_reporting.api import business_requests as br
from leadflow_reporting.api import export_mapping, mapping, requests
from leadflow_reporting.api.validation import funnel_query
from leadflow_reporting.business import BusinessReports
from leadflow_reporting.domain.query import FunnelQuery
from leadflow_reporting.export import Exports
from leadflow_reporting.funnels import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Funnels, fingerprint
from leadflow_reporting.journeys import Journeys
from leadflow_reporting.paths import Paths
from leadflow_reporting.realtime import RealTime
from leadflow_reporting.retention import Retention


class NotBuiltYet(ServiceError):
    code = grpc.StatusCode.UNIMPLEMENTED

    def __init__(self, rpc: str) -> None:
        super().__init__(f"{rpc} is not available in this version of reporting")


def _funnel(request: pb.RunFunnelRequest | pb.ListFunnelDropOffsRequest) -> FunnelQuery:
    if not request.HasField("funnel"):
        raise InvalidArgument.field("funnel", "is required")
    return funnel_query(request.funnel)


@dataclass(frozen=True)
class Reports:
    funnels: Funnels
    real_time: RealTime
    paths: Paths
    journeys: Journeys
    retention: Retention
    business: BusinessReports
    alerts: Alerts


def _now_us() -> int:
    return time.time_ns() // 1000


class ReportingServicer(reporting_service_pb2_grpc.ReportingServiceServicer):
    def __init__(self, reports: Reports) -> None:
        self._reports = reports
        self._funnels = reports.funnels

    async def RunFunnel(self, request, context):
        query = _funnel(request)
        answer = await self._funnels.run(current_principal().tenant_id, query)
        return mapping.funnel_response(answer)

    async def ListFunnelDropOffs(self, request, context):
        bad: list[FieldViolation] = []
        try:
            query = _funnel(request)
        except InvalidArgument as exc:
            bad += exc.violations
            query = None
        steps = len(request.funnel.steps)
        if not 1 <= request.step_index < max(steps, 2):
            bad.append(FieldViolation("step_index", f"must be in 1..{max(steps - 1, 1)}"))
        if request.HasField("breakdown_value") and not request.funnel.HasField("breakdown"):
            bad.append(FieldViolation("breakdown_value", "needs funnel.breakdown"))
        size = request.page.page_size
        if not 0 <= size <= MAX_PAGE_SIZE:
            bad.append(FieldViolation("page.page_size", f"must be in 0..{MAX_PAGE_SIZE}"))
        if bad:
            raise InvalidArgument(*bad)
        assert query is not None
        value = request.breakdown_value if request.HasField("breakdown_value") else None
        page = await self._funnels.drop_offs(
            current_principal().tenant_id,
            query,
            request.step_index,
            value,
            size or DEFAULT_PAGE_SIZE,
            request.page.page_token,
            fingerprint(
                request.funnel.SerializeToString(deterministic=True),
                str(request.step_index).encode(),
                b"" if value is None else b"=" + value.encode(),
            ),
        )
        return mapping.drop_offs_response(page)

    async def GetRealTime(self, request, context):
        query = requests.real_time_query(request, _now_us())
        answer = await self._reports.real_time.view(current_principal().tenant_id, query)
        return mapping.real_time_response(answer)

    async def GetPaths(self, request, context):
        query = requests.paths_query(request)
        answer = await self._reports.paths.run(current_principal().tenant_id, query)
        return mapping.paths_response(answer)

    async def GetJourney(self, request, context):
        query = requests.journey_query(request)
        answer = await self._reports.journeys.run(current_principal().tenant_id, query, _now_us())
        return mapping.journey_response(answer)

    async def GetRetention(self, request, context):
        query = requests.retention_query(request)
        table = await self._reports.retention.run(current_principal().tenant_id, query, _now_us())
        return mapping.retention_response(table, request.period or rt.COHORT_PERIOD_WEEK)

    async def GetLeadQuality(self, request, context):
        identified, brand_ids = br.lead_quality(request)
        answer = await self._reports.business.lead_quality.run(
            current_principal().tenant_id, identified, brand_ids, request.by_brand
        )
        return bm.lead_quality_response(answer)

    async def GetLifecycleFunnel(self, request, context):
        start, end, brand_ids = br.ranged(request)
        answer = await self._reports.business.lifecycle.run(
            current_principal().tenant_id, start, end, brand_ids
        )
        return bm.lifecycle_response(answer)

    async def GetEngagement(self, request, context):
        start, end, brand_ids, excluded = br.engagement(request)
        answer = await self._reports.business.engagement.run(
            current_principal().tenant_id,
            start,
            end,
            brand_ids,
            request.include_machine_events,
            excluded,
        )
        return bm.engagement_response(answer)

    async def GetAttributionSummary(self, request, context):
        start, end, brand_ids, models, column, limit, types = br.attribution_summary(request)
        answer = await self._reports.business.attribution.run(
            current_principal().tenant_id, start, end, brand_ids, models, column, limit, types
        )
        return bm.attribution_response(answer)

    async def GetSourceInsights(self, request, context):
        query = br.source_insights(request)
        answer = await self._reports.business.insights.run(current_principal().tenant_id, query)
        return bm.insights_response(answer)

    async def GetBestPostingHour(self, request, context):
        start, end, brand_ids, selector, path, minimum, tz, by = br.best_posting_hour(request)
        answer = await self._reports.business.posting.run(
            current_principal().tenant_id, start, end, brand_ids, selector, path, minimum, tz, by
        )
        return bm.posting_response(answer)

    async def GetAbTest(self, request, context):
        query = br.ab_test(request)
        answer = await self._reports.business.experiments.run(current_principal().tenant_id, query)
        return bm.ab_response(answer, query.experiment, query.confidence, query.min_sample)

    async def GetPortfolioMetrics(self, request, context):
        start, end, brand_ids = br.portfolio(request)
        tenant_id = current_principal().tenant_id
        portfolio = self._reports.business.portfolio
        now = await portfolio.run(tenant_id, start, end, brand_ids)
        before = previous = None
        if request.compare_previous:
            previous = (2 * start - end, start)
            before = await portfolio.run(tenant_id, *previous, brand_ids)
        out = bm.portfolio_response(now, before, previous)
        alerts = await self._reports.alerts.in_range(tenant_id, start, end, brand_ids)
        out.alerts.extend(am.kpi_alert(a) for a in alerts)
        return out

    # Reports of later slices.
    async def GetWeeklyReport(self, request, context):
        raise NotBuiltYet("GetWeeklyReport")

    async def Export(self, request, context):
        now_us = _now_us()
        plan = export_mapping.plan(request, now_us)
        stream = Exports.of(self._reports).stream(current_principal().tenant_id, plan, now_us)
        async for message in stream:
            yield message

    async def PutAlertConfig(self, request, context):
        draft, expected = ar.put_config(request)
        config = await self._reports.alerts.put_config(
            current_principal().tenant_id, draft, expected, _now_us()
        )
        return pb.PutAlertConfigResponse(config=am.config_to_proto(config))

    async def GetAlertConfig(self, request, context):
        version = ar.get_config(request)
        config = await self._reports.alerts.get_config(current_principal().tenant_id, version)
        return pb.GetAlertConfigResponse(config=am.config_to_proto(config))

    async def ListAlerts(self, request, context):
        query = ar.list_alerts(request)
        found, more = await self._reports.alerts.page(current_principal().tenant_id, query)
        out = pb.ListAlertsResponse(alerts=[am.kpi_alert(a) for a in found])
        if more and found:
            last = found[-1]
            out.page.next_page_token = ar.page_token(
                query.fingerprint, last.raised_at_us, last.alert_id
            )
        return out
